"""Which recommender serves a user at a request time: the experiment running then and the
user's arm in it, or the default recommender outside experiments."""

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from experiment.bundles import BundleError, check_bundle, load_bundle
from experiment.config import Assignment, ExperimentConfigError, ExperimentsFile
from recommenders.base import META_FILE, Recommender
from recommenders.registry import make_recommender

log = logging.getLogger("feedlab.experiment")

DEFAULT_ARM = "control"
"""What a response says to users outside any experiment."""


@dataclass(frozen=True)
class Route:
    """The arm a response reports, the recommender serving it, and the assignment (None
    outside experiments: such exposures are logged with no experiment)."""

    arm: str
    recommender: Recommender
    assignment: Assignment | None


@dataclass(frozen=True)
class ServedModel:
    experiment: str | None
    arm: str
    recommender: Recommender


class Router:
    """Routes users to recommenders; built once at start by :meth:`load`."""

    def __init__(
        self,
        experiments: ExperimentsFile,
        arms: dict[tuple[str, str], Recommender],
        default: Recommender,
    ) -> None:
        self.experiments = experiments
        self._arms = arms
        self.default = default

    @classmethod
    def load(cls, experiments: ExperimentsFile, artifacts: Path, default: Recommender) -> "Router":
        """Load every arm's bundle from ``artifacts``; ExperimentConfigError names the arm
        and says what to fix when a recommender is unknown or its bundle is missing."""
        loaded: dict[Path, Recommender] = {}
        arms: dict[tuple[str, str], Recommender] = {}
        for experiment in experiments.experiments:
            for arm in experiment.arms:
                where = f"experiment {experiment.name!r}, arm {arm.name!r}"
                directory = artifacts / arm.bundle_dir
                if directory not in loaded:
                    loaded[directory] = _load_bundle(arm.recommender, directory, where)
                model = loaded[directory]
                if model.name != arm.recommender:
                    raise ExperimentConfigError(
                        f"{where}: {directory} holds a {model.name!r} bundle, not "
                        f"{arm.recommender!r}; fix the arm's recommender or bundle"
                    )
                arms[(experiment.name, arm.name)] = model
                log.info("%s serves %s", where, model.version)
        return cls(experiments, arms, default)

    def route(self, user_id: int, at: datetime) -> Route:
        """The route of ``user_id`` for a request at ``at`` (aware UTC)."""
        experiment = self.experiments.active_at(at)
        assignment = experiment.assign(user_id) if experiment else None
        if assignment is None:
            return Route(DEFAULT_ARM, self.default, None)
        return Route(
            assignment.arm, self._arms[(assignment.experiment, assignment.arm)], assignment
        )

    def served(self) -> list[ServedModel]:
        """The default recommender, then every experiment arm's."""
        return [ServedModel(None, DEFAULT_ARM, self.default)] + [
            ServedModel(experiment, arm, model) for (experiment, arm), model in self._arms.items()
        ]

    def model_of(self, experiment: str, arm: str) -> Recommender:
        return self._arms[(experiment, arm)]


def check_arm_bundles(experiments: ExperimentsFile, artifacts: Path) -> None:
    """Check every arm's bundle as far as it can be without loading it
    (:func:`~experiment.bundles.check_bundle`), with the errors :meth:`Router.load` gives:
    a supervisor of several workers finds a damaged bundle before it starts any."""
    for experiment in experiments.experiments:
        for arm in experiment.arms:
            where = f"experiment {experiment.name!r}, arm {arm.name!r}"
            model_class = _model_class(arm.recommender, artifacts / arm.bundle_dir, where)
            try:
                check_bundle(model_class, artifacts / arm.bundle_dir)
            except BundleError as error:
                raise ExperimentConfigError(f"{where}: {error}") from None


def _model_class(name: str, directory: Path, where: str) -> type[Recommender]:
    try:
        model_class = type(make_recommender(name))
    except ValueError as error:
        raise ExperimentConfigError(f"{where}: {error}; fix the arm's recommender") from None
    if not (directory / META_FILE).is_file():
        raise ExperimentConfigError(
            f"{where}: no {name!r} bundle at {directory} ({META_FILE} is missing); train and "
            "save it there, set FEEDLAB_ARTIFACTS to the folder holding it, or point the "
            "arm's `bundle` at an existing folder under it"
        )
    return model_class


def _load_bundle(name: str, directory: Path, where: str) -> Recommender:
    model_class = _model_class(name, directory, where)
    try:
        return load_bundle(model_class, directory)
    except BundleError as error:
        raise ExperimentConfigError(f"{where}: {error}") from None
