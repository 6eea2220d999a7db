"""``/experiments``: the configured experiments, read-only, with live counts per arm."""

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status

from api.deps import StateDep
from api.schemas import ArmCounts, ArmInfo, ExperimentDetail, ExperimentInfo
from api.state import ServiceState
from experiment.config import ExperimentConfig
from feeddata.exposures import arm_counts

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.get("", response_model=list[ExperimentInfo])
def list_experiments(state: StateDep) -> list[ExperimentInfo]:
    return [_info(state, e) for e in state.router.experiments.experiments]


def configured_experiment(state: ServiceState, name: str) -> ExperimentConfig:
    """The experiment ``name`` of the service's experiment file; 404 naming the known ones."""
    experiment = state.router.experiments.get(name)
    if experiment is None:
        known = ", ".join(e.name for e in state.router.experiments.experiments) or "none"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"experiment {name!r} not found; configured: {known}"
        )
    return experiment


@router.get("/{name}", response_model=ExperimentDetail)
def show_experiment(name: str, state: StateDep) -> ExperimentDetail:
    experiment = configured_experiment(state, name)
    counts = arm_counts(bind=state.engine, experiment=name)
    return ExperimentDetail(
        **_info(state, experiment).model_dump(),
        counts={
            arm.name: ArmCounts(
                exposures=counts[arm.name].exposures if arm.name in counts else 0,
                users=counts[arm.name].users if arm.name in counts else 0,
            )
            for arm in experiment.arms
        },
    )


def _info(state: ServiceState, experiment: ExperimentConfig) -> ExperimentInfo:
    ranges = {r.arm: r for r in experiment.ranges}
    return ExperimentInfo(
        name=experiment.name,
        description=experiment.description,
        salt=experiment.salt,
        start=experiment.start,
        end=experiment.end,
        coverage=experiment.coverage,
        running=experiment.is_active(datetime.now(UTC)),
        arms=[
            ArmInfo(
                name=arm.name,
                weight=arm.weight,
                buckets=(ranges[arm.name].start, ranges[arm.name].stop - 1),
                covered_buckets=ranges[arm.name].covered,
                recommender=arm.recommender,
                bundle=arm.bundle_dir,
                model_version=state.router.model_of(experiment.name, arm.name).version,
            )
            for arm in experiment.arms
        ],
        forced={arm: list(users) for arm, users in experiment.forced.items()},
    )
