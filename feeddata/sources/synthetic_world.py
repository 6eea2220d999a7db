"""The synthetic network's fixed parts: user profiles, posts, and the hidden tastes behind them."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from feeddata.sources.synthetic_config import SyntheticConfig
from feeddata.sources.synthetic_text import SUBTOPICS, post_texts
from feeddata.sources.synthetic_truth import GroundTruth

# Random streams, one per part, so that changing one part never shifts another.
STREAM_USERS, STREAM_POSTS, STREAM_TASTES, STREAM_CALIBRATION, STREAM_DAYS, STREAM_FEED = range(6)

COUNTRIES = {
    "Russia": 0.878,
    "Ukraine": 0.055,
    "Belarus": 0.018,
    "Azerbaijan": 0.015,
    "Kazakhstan": 0.013,
    "Finland": 0.0095,
    "Turkey": 0.0085,
    "Latvia": 0.004,
    "Cyprus": 0.004,
    "Switzerland": 0.0035,
    "Estonia": 0.003,
}
CITIES = {
    "Russia": (
        "Moscow, Saint Petersburg, Novosibirsk, Yekaterinburg, Kazan, Nizhniy Novgorod, "
        "Chelyabinsk, Samara, Omsk, Rostov, Ufa, Krasnoyarsk, Voronezh, Perm, Volgograd, "
        "Krasnodar, Saratov, Tyumen, Tolyatti, Izhevsk, Barnaul, Ulyanovsk, Irkutsk, "
        "Khabarovsk, Yaroslavl, Vladivostok, Makhachkala, Tomsk, Orenburg, Kemerovo, "
        "Novokuznetsk, Ryazan, Astrakhan, Penza, Lipetsk, Kirov, Cheboksary, Tula, "
        "Kaliningrad, Kursk, Sochi, Murmansk, Tver, Bryansk, Ivanovo, Belgorod"
    ),
    "Ukraine": "Kyiv, Kharkiv, Odesa, Dnipro, Donetsk, Zaporizhzhia, Lviv, Kryvyi Rih, Mykolaiv",
    "Belarus": "Minsk, Gomel, Mogilev, Vitebsk, Grodno, Brest",
    "Azerbaijan": "Baku, Ganja, Sumqayit, Mingachevir, Lankaran",
    "Kazakhstan": "Almaty, Nur-Sultan, Shymkent, Karaganda, Aktobe, Taraz, Pavlodar",
    "Finland": "Helsinki, Espoo, Tampere, Vantaa, Oulu, Turku",
    "Turkey": "Istanbul, Ankara, Izmir, Antalya, Bursa, Adana",
    "Latvia": "Riga, Daugavpils, Liepaja, Jelgava",
    "Cyprus": "Nicosia, Limassol, Larnaca, Paphos",
    "Switzerland": "Zurich, Geneva, Basel, Lausanne, Bern",
    "Estonia": "Tallinn, Tartu, Narva, Parnu",
}

# Tastes over topics: a base appeal, a shift per 10 years of age above 25, and a shift for
# men (gender 1) against women. Scales in logits.
TOPIC_BASE = {
    "movie": 0.0,
    "covid": -0.2,
    "business": -0.3,
    "sport": 0.1,
    "politics": -0.3,
    "tech": 0.1,
    "entertainment": 0.2,
}
TOPIC_AGE = {
    "movie": -0.15,
    "covid": 0.25,
    "business": 0.2,
    "sport": -0.05,
    "politics": 0.3,
    "tech": -0.1,
    "entertainment": -0.25,
}
TOPIC_MALE = {
    "movie": 0.0,
    "covid": -0.1,
    "business": 0.1,
    "sport": 0.35,
    "politics": 0.1,
    "tech": 0.3,
    "entertainment": -0.3,
}
COUNTRY_TASTE_SD = 0.4
PERSONAL_TASTE_SD = 0.8
LATENT_RANK = 8
USER_FACTOR_SD = 0.8
POST_QUALITY_SD = 0.5
USER_PROPENSITY_SD = 0.6
OS_BIAS = {"iOS": 0.15, "Android": 0.0}
SOURCE_BIAS = {"organic": 0.2, "ads": 0.0}
# UTC hours; Russian evenings (UTC+3) like a little more
HOUR_LIKE_AMPLITUDE = 0.15
HOUR_LIKE_PEAK_UTC = 18
# sessions started per local (UTC+3) hour, relative
LOCAL_HOUR_ACTIVITY = (
    2.0,
    1.2,
    0.7,
    0.4,
    0.3,
    0.35,
    0.6,
    1.2,
    2.0,
    2.6,
    2.8,
    3.0,
    3.3,
    3.2,
    3.0,
    3.0,
    3.2,
    3.6,
    4.2,
    4.8,
    5.2,
    5.0,
    4.2,
    3.0,
)
UTC_OFFSET_HOURS = 3
ACTIVITY_SD = 1.0  # lognormal spread of users' views per day


def rng_for(config: SyntheticConfig, *stream: int) -> np.random.Generator:
    """The random stream ``stream`` of ``config.seed`` (independent of every other)."""
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=stream))


@dataclass(frozen=True)
class World:
    users: pd.DataFrame
    posts: pd.DataFrame
    truth: GroundTruth  # not yet calibrated: intercept 0


def _categorical(
    rng: np.random.Generator, labels: list[str], weights: list[float], n: int
) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return np.asarray(labels, dtype=object)[rng.choice(len(labels), size=n, p=p / p.sum())]


def make_users(config: SyntheticConfig) -> pd.DataFrame:
    """User profiles shaped like the course's: ids from 200 with a few gaps, mostly Russia."""
    rng = rng_for(config, STREAM_USERS)
    n = config.users
    steps = 1 + (rng.random(n) < 0.03) * rng.geometric(0.5, size=n)
    steps[0] = 0
    user_ids = 200 + np.cumsum(steps)
    countries = _categorical(rng, list(COUNTRIES), list(COUNTRIES.values()), n)
    cities = np.empty(n, dtype=object)
    for country in COUNTRIES:
        mask = countries == country
        names = CITIES[country].split(", ")
        zipf = 1.0 / np.arange(1, len(names) + 1) ** 1.1
        cities[mask] = _categorical(rng, names, list(zipf), int(mask.sum()))
    ages = 14 + np.floor(rng.lognormal(np.log(10.5), 0.65, size=n)).astype(np.int64)
    return pd.DataFrame(
        {
            "user_id": user_ids.astype(np.int64),
            "gender": (rng.random(n) < 0.55).astype(np.int64),
            "age": np.minimum(ages, 90),
            "country": countries,
            "city": cities,
            "exp_group": rng.integers(0, 5, size=n),
            "os": _categorical(rng, ["Android", "iOS"], [0.64, 0.36], n),
            "source": _categorical(rng, ["ads", "organic"], [0.55, 0.45], n),
        }
    )


def make_posts(config: SyntheticConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """Posts with ids 1..posts, topics shuffled over ids; also each post's subtopic."""
    rng = rng_for(config, STREAM_POSTS)
    counts = config.topic_counts()
    topics = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    topics = topics[rng.permutation(len(topics))]
    subtopics = rng.integers(0, SUBTOPICS, size=len(topics))
    texts = post_texts(list(topics), subtopics, rng)
    frame = pd.DataFrame(
        {"post_id": np.arange(1, len(topics) + 1, dtype=np.int64), "text": texts, "topic": topics}
    )
    return frame, subtopics


def make_truth(
    config: SyntheticConfig, users: pd.DataFrame, posts: pd.DataFrame, subtopics: np.ndarray
) -> GroundTruth:
    """Draw the hidden tastes; the intercept is left at 0 for calibration."""
    rng = rng_for(config, STREAM_TASTES)
    topics = tuple(config.topic_counts())
    n_users, n_topics = len(users), len(topics)
    age = (users["age"].to_numpy(np.float64) - 25.0) / 10.0
    male = users["gender"].to_numpy(np.float64) * 2.0 - 1.0
    country_codes, country_names = pd.factorize(users["country"], sort=True)
    country_taste = rng.normal(0.0, COUNTRY_TASTE_SD, size=(len(country_names), n_topics))
    country_taste[list(country_names).index("Russia")] = 0.0  # the reference country
    affinity = (
        np.array([TOPIC_BASE[t] for t in topics])
        + np.outer(age, [TOPIC_AGE[t] for t in topics])
        + np.outer(male / 2.0, [TOPIC_MALE[t] for t in topics])
        + country_taste[country_codes]
        + rng.normal(0.0, PERSONAL_TASTE_SD, size=(n_users, n_topics))
    )
    user_bias = (
        rng.normal(0.0, USER_PROPENSITY_SD, size=n_users)
        + users["os"].map(OS_BIAS).to_numpy(np.float64)
        + users["source"].map(SOURCE_BIAS).to_numpy(np.float64)
    )
    user_factors = rng.normal(0.0, USER_FACTOR_SD / np.sqrt(LATENT_RANK), (n_users, LATENT_RANK))
    post_topic = pd.Categorical(posts["topic"], categories=topics).codes.astype(np.int8)
    # a post's place in taste space is part topic, part subtopic, part its own
    topic_centre = rng.normal(0.0, 0.5, size=(n_topics, LATENT_RANK))
    subtopic_centre = rng.normal(0.0, 0.5, size=(n_topics, SUBTOPICS, LATENT_RANK))
    post_factors = (
        topic_centre[post_topic]
        + subtopic_centre[post_topic, subtopics]
        + rng.normal(0.0, 0.7, size=(len(posts), LATENT_RANK))
    )
    quality = rng.normal(0.0, POST_QUALITY_SD, size=len(posts))
    views = rng.lognormal(-(ACTIVITY_SD**2) / 2, ACTIVITY_SD, size=n_users)
    active = np.clip(rng.beta(2.5, 1.5, size=n_users), 0.05, 1.0)
    hours = np.arange(24)
    local = np.roll(np.asarray(LOCAL_HOUR_ACTIVITY), -UTC_OFFSET_HOURS)
    return GroundTruth(
        config=config.to_dict(),
        topics=topics,
        intercept=0.0,
        user_ids=users["user_id"].to_numpy(np.int64),
        post_ids=posts["post_id"].to_numpy(np.int64),
        post_topic=post_topic,
        user_bias=user_bias.astype(np.float32),
        user_topic_affinity=affinity.astype(np.float32),
        user_factors=user_factors.astype(np.float32),
        post_quality=quality.astype(np.float32),
        post_factors=post_factors.astype(np.float32),
        hour_like_effect=HOUR_LIKE_AMPLITUDE
        * np.cos(2 * np.pi * (hours - HOUR_LIKE_PEAK_UTC) / 24),
        user_views_per_day=(config.views_per_user_day * views).astype(np.float32),
        user_active_share=active.astype(np.float32),
        hour_activity=local / local.sum(),
    )


def make_world(config: SyntheticConfig) -> World:
    """Users, posts and the uncalibrated ground truth of ``config``."""
    users = make_users(config)
    posts, subtopics = make_posts(config)
    return World(users, posts, make_truth(config, users, posts, subtopics))
