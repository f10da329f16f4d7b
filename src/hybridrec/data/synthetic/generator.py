"""Deterministic synthetic recommender data: the embedded default dataset and the test fixture.

Why synthetic: the project must train out of the box (``make train``) without downloading
anything, and every test needs data whose answer is known. The generator therefore plants a
structure that a model can learn and that tests can check against the truth:

* Items fall into ``n_categories = min(n_factors, 12)`` categories. Each category has a centre
  direction in the ``n_factors``-dim latent space (orthonormal, so categories are distinct);
  an item's factor vector is its centre plus noise.
* Each user likes 1-3 categories (Dirichlet weights over their centres) plus noise.
* A user's items are drawn without replacement from ``softmax(u . v / T + b)`` where ``b`` is a
  Zipf-like popularity logit (``-popularity_skew * log(rank)``), so both taste and popularity
  matter. Sampling without replacement is done with the Gumbel top-k trick, which is exactly
  successive sampling from that softmax.
* Star ratings follow the user's affinity to the item; timestamps form sessions of events minutes
  apart separated by breaks of hours to days; item text (title, description, brand) is drawn from
  a per-category vocabulary so text predicts the latent category.
* Marketers judge items by a hidden rule on what the item text shows (:func:`judgment_rule`):
  the brand's tier, a few title words, and a little of the latent "appeal" (a direction of the
  factor space the interactions do show). In a segment context the segment's taste for the
  item's category adds to it. Each rater sees the rule through their own scale, leniency and
  noise; the last rater is deliberately unreliable. ``n_new_items`` catalogue-only items (text,
  no interaction: new products) are judged too, so a share of judged items is cold.

All randomness comes from ``numpy.random.default_rng`` seeded from one ``seed``; each part
(factors, interactions, text, marketer ratings, new items, the judgment rule) has its own child
stream (``SeedSequence.spawn``) so that, e.g., changing ``n_raters`` or ``n_new_items`` does not
change the interactions or the text of the other items.

The writers (:mod:`hybridrec.data.synthetic.writers`) turn a :class:`SyntheticData` into the
on-disk formats of the real benchmarks; :func:`hybridrec.data.readers.read_synthetic` is the
generated data as a data source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridrec.data.raw import RawData

#: 2024-01-01T00:00:00Z: interactions start here and span about ``ACTIVE_DAYS`` days.
START_TIMESTAMP = 1_704_067_200
ACTIVE_DAYS = 90
DAY = 86_400

#: Softmax temperature on ``u . v``; lower means taste dominates popularity more.
TEMPERATURE = 0.15
#: Share of items whose description is empty (rounded to a whole number of items).
EMPTY_DESCRIPTION_SHARE = 0.02
#: Probability that the gap before an event is a break (hours to days) rather than minutes.
BREAK_PROBABILITY = 0.15
#: Segment names used as marketer-rating ``context`` (about a third of rows have one).
SEGMENTS = ("young_families", "students", "retirees", "professionals", "outdoor_enthusiasts")
CONTEXT_SHARE = 1 / 3
#: Rater scales, cycled by rater index: (low, high). Scores are whole numbers on the scale.
RATER_SCALES: tuple[tuple[int, int], ...] = ((1, 5), (0, 100), (1, 10), (-2, 2))
#: Per-rater noise on the hidden quality (standard deviations); the last rater is the noisy one.
RELIABLE_NOISE = 0.2
NOISY_NOISE = 1.6
#: The hidden judgment rule (see :func:`judgment_rule`): weights of the brand tier, the title
#: words and the latent appeal; title words and their values.
RULE_TIER, RULE_WORDS, RULE_APPEAL = 1.0, 0.8, 0.3
QUALITY_WORDS = {"premium": 1.0, "signature": 1.0, "deluxe": 0.5, "pro": 0.5, "mini": -0.5}
#: In a segment context the segment's taste for the item's category adds this much.
SEGMENT_EFFECT = 0.5


@dataclass(frozen=True)
class _Category:
    name: str
    nouns: tuple[str, ...]  # product words; a title ends with one
    modifiers: tuple[str, ...]  # category-specific title words
    uses: tuple[str, ...]  # "made for ... and ..." phrases in descriptions
    brands: tuple[str, ...]
    base_price: float
    genres: tuple[str, ...]  # MovieLens genres this category maps onto


# Ordered: the first ``n_categories`` are used. "Café" (kitchen) is deliberately non-ASCII so the
# latin-1 MovieLens writers and their readers get exercised on an accented character.
_CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "outdoor",
        ("tent", "backpack", "lantern", "hammock", "compass", "headlamp", "canteen", "tarp"),
        ("trail", "camping", "hiking", "alpine", "waterproof", "rugged", "expedition"),
        ("weekend hikes", "camping trips", "mountain trails", "backcountry nights"),
        ("Northpeak", "Trailborn", "Summit & Co"),
        60.0,
        ("Adventure", "Western"),
    ),
    _Category(
        "kitchen",
        ("skillet", "knife", "kettle", "blender", "saucepan", "grater", "teapot", "whisk"),
        ("cast-iron", "nonstick", "stainless", "chef", "café", "ceramic", "bakery"),
        ("everyday cooking", "family dinners", "baking", "morning coffee"),
        ("Café Verde", "Hearthline", "Copperpot"),
        35.0,
        ("Comedy",),
    ),
    _Category(
        "electronics",
        ("headphones", "charger", "speaker", "tablet", "router", "webcam", "keyboard", "drone"),
        ("wireless", "bluetooth", "rechargeable", "digital", "portable", "4k", "noise-cancelling"),
        ("streaming music", "video calls", "gaming", "working from home"),
        ("Voltix", "Nexon", "Auralink"),
        120.0,
        ("Sci-Fi", "Action"),
    ),
    _Category(
        "books",
        ("novel", "cookbook", "memoir", "atlas", "anthology", "guide", "thriller", "biography"),
        ("paperback", "hardcover", "illustrated", "bestselling", "collected", "annotated"),
        ("quiet evenings", "book clubs", "long commutes", "curious minds"),
        ("Inkwell Press", "Paperlane", "Quillhouse"),
        15.0,
        ("Drama", "Mystery"),
    ),
    _Category(
        "beauty",
        ("serum", "moisturizer", "lipstick", "shampoo", "cleanser", "perfume", "mascara", "balm"),
        ("hydrating", "organic", "matte", "fragrance-free", "vitamin", "botanical", "silky"),
        ("daily skincare", "sensitive skin", "evening routines", "glowing skin"),
        ("Lumiere", "Petalia", "Dermacare"),
        20.0,
        ("Romance",),
    ),
    _Category(
        "toys",
        ("puzzle", "robot", "doll", "blocks", "kite", "train", "plush", "boardgame"),
        ("wooden", "educational", "colorful", "stacking", "remote-control", "musical", "magnetic"),
        ("toddlers", "family game nights", "creative play", "rainy afternoons"),
        ("Playnest", "Tinkertot", "Jollybox"),
        25.0,
        ("Children's", "Animation"),
    ),
    _Category(
        "sports",
        ("dumbbells", "racket", "jersey", "sneakers", "ball", "yoga-mat", "helmet", "gloves"),
        ("training", "running", "fitness", "tennis", "breathable", "lightweight", "pro-grade"),
        ("morning runs", "gym sessions", "team practice", "home workouts"),
        ("Stridex", "Athleta Prime", "Kinetix"),
        45.0,
        ("Action", "War"),
    ),
    _Category(
        "garden",
        ("planter", "hose", "shears", "seeds", "trowel", "birdhouse", "sprinkler", "compost"),
        ("herb", "flowering", "raised-bed", "heirloom", "perennial", "greenhouse", "terracotta"),
        ("backyard gardens", "balcony herbs", "spring planting", "vegetable beds"),
        ("Greenfold", "Rootwell", "Bloomery"),
        30.0,
        ("Documentary",),
    ),
    _Category(
        "office",
        ("notebook", "stapler", "planner", "pen", "organizer", "lamp", "binder", "whiteboard"),
        ("ergonomic", "desk", "refillable", "minimalist", "magnetic", "dotted", "executive"),
        ("busy workdays", "note taking", "project planning", "home offices"),
        ("Deskwise", "Clearline", "Ledgerly"),
        12.0,
        ("Film-Noir", "Crime"),
    ),
    _Category(
        "pets",
        ("leash", "collar", "kibble", "litter", "chew-toy", "bed", "carrier", "brush"),
        ("grain-free", "chewable", "orthopedic", "reflective", "catnip", "puppy", "senior"),
        ("daily walks", "playful cats", "growing puppies", "car trips"),
        ("Pawsome", "Tailwind", "Furbelle"),
        18.0,
        ("Fantasy",),
    ),
    _Category(
        "music",
        ("guitar", "ukulele", "keyboard", "metronome", "microphone", "amplifier", "drumsticks"),
        ("acoustic", "electric", "studio", "vintage", "beginner", "tuned", "concert"),
        ("practice sessions", "live gigs", "home recording", "music lessons"),
        ("Resonance", "Fretworks", "Tempo & Tone"),
        80.0,
        ("Musical",),
    ),
    _Category(
        "apparel",
        ("jacket", "sweater", "scarf", "jeans", "boots", "hoodie", "shirt", "raincoat"),
        ("wool", "denim", "slim-fit", "cozy", "tailored", "linen", "insulated"),
        ("cold mornings", "city weekends", "office days", "travel"),
        ("Threadline", "Urban Loom", "Woolhaven"),
        40.0,
        ("Horror", "Thriller"),
    ),
)

# Words any category's titles and descriptions may use: they carry no category signal.
_GENERIC_WORDS = (
    "premium",
    "classic",
    "compact",
    "deluxe",
    "essential",
    "everyday",
    "smart",
    "pro",
    "mini",
    "ultra",
    "signature",
    "original",
)


@dataclass
class SyntheticData:
    """One generated dataset and the truth behind it.

    interactions: ``user``, ``item``, ``rating``, ``timestamp``, ``session`` (all int64), sorted by
        user then timestamp; no duplicate (user, item) pairs.
    items: ``item`` (int64), ``title``, ``category``, ``brand``, ``description`` (strings;
        ``EMPTY_DESCRIPTION_SHARE`` of descriptions are ``""``), ``price`` (float64).
    ratings: marketer ratings ``rater`` ("rater_k"), ``item`` (int64), ``context`` ("" or a
        segment), ``score`` (float64 on the rater's scale, see ``RATER_SCALES``), ``timestamp``,
        and ``set`` (the items shown together) when ``set_size`` > 0.
    new_items: ``n_new_items`` catalogue-only items (ids ``n_items..``), columns as ``items``:
        in the item table a reader returns, never in the interactions.
    user_factors: (n_users, n_factors) true user vectors.
    item_factors: (n_items, n_factors) true item vectors.
    item_bias: (n_items,) popularity logit added to ``u . v / TEMPERATURE`` when sampling.
    item_quality: (n_items + n_new_items,) the hidden judgment rule's value (standardised).
    item_category: (n_items,) category index of each item (``items.category`` is its name).
    rater_noise: (n_raters,) noise standard deviation of each rater on the quality scale.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    ratings: pd.DataFrame
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    item_quality: np.ndarray
    item_category: np.ndarray
    rater_noise: np.ndarray
    new_items: pd.DataFrame | None = None

    def affinity(self) -> np.ndarray:
        """(n_users, n_items) true taste scores ``u . v`` (no popularity term)."""
        return self.user_factors @ self.item_factors.T

    def to_raw(self, name: str = "synthetic") -> RawData:
        """The data as a reader would return it (copies, so callers may modify them)."""
        return RawData(
            name=name,
            interactions=self.interactions.copy(),
            items=pd.concat([self.items, self.new_items], ignore_index=True)
            if self.new_items is not None
            else self.items.copy(),
            ratings=self.ratings.copy(),
            ordered_by_file=False,
        )


def generate(
    n_users: int = 500,
    n_items: int = 300,
    n_factors: int = 8,
    mean_interactions: float = 25,
    popularity_skew: float = 1.0,
    n_raters: int = 4,
    ratings_per_rater: int = 60,
    session_gap: int = 1800,
    seed: int = 0,
    n_new_items: int = 0,
    set_size: int = 0,
) -> SyntheticData:
    """Generate a dataset; identical output for identical arguments.

    Args:
        n_users, n_items: sizes; ids are ``0..n-1``.
        n_factors: latent dimension; also the number of categories (at most 12).
        mean_interactions: mean interactions per user (at least 5 each, at most ``n_items // 2``).
        popularity_skew: Zipf exponent of the popularity logit; 0 means taste only.
        n_raters, ratings_per_rater: marketer ratings (each rater rates distinct items).
        session_gap: seconds; a gap larger than this starts a new session.
        seed: the only source of randomness.
        n_new_items: catalogue-only items (text, no interactions) that raters judge too.
        set_size: > 0: each rater's judgments in one context come in sets of this many items
            shown together (column ``set``); 0: no sets.
    """
    if n_users < 1 or n_items < 10:
        raise ValueError(f"need n_users >= 1 and n_items >= 10, got {n_users}, {n_items}")
    if n_factors < 1:
        raise ValueError(f"n_factors must be >= 1, got {n_factors}")
    if mean_interactions < 5:
        raise ValueError(f"mean_interactions must be >= 5, got {mean_interactions}")
    if ratings_per_rater < 0:
        raise ValueError(f"ratings_per_rater must be >= 0, got {ratings_per_rater}")
    # a rater judges each item at most once: small catalogues get every item rated
    ratings_per_rater = min(ratings_per_rater, n_items)
    if n_raters < 0 or session_gap < 1:
        raise ValueError(f"need n_raters >= 0 and session_gap >= 1, got {n_raters}, {session_gap}")
    if n_new_items < 0 or set_size < 0:
        raise ValueError(f"need n_new_items, set_size >= 0, got {n_new_items}, {set_size}")

    streams = np.random.SeedSequence(seed).spawn(6)
    rng_factors, rng_inter, rng_text, rng_ratings, rng_new, rng_rule = (
        np.random.default_rng(s) for s in streams
    )
    n_categories = min(n_factors, len(_CATEGORIES))
    factors = _latent_factors(rng_factors, n_users, n_items, n_factors, n_categories)
    user_factors, item_factors, item_category, item_bias, appeal = factors
    item_bias = item_bias * popularity_skew

    interactions = _interactions(
        rng_inter,
        user_factors,
        item_factors,
        item_bias,
        mean_interactions=mean_interactions,
        session_gap=session_gap,
        item_category=item_category,
    )
    tiers = _brand_tiers(rng_rule)
    items = _items(rng_text, item_category, tiers)
    new_items = None
    all_items, all_category, all_appeal = items, item_category, appeal
    if n_new_items > 0:
        new_category = rng_new.integers(0, n_categories, size=n_new_items)
        new_items = _items(rng_new, new_category, tiers, first_id=n_items)
        all_items = pd.concat([items, new_items], ignore_index=True)
        all_category = np.concatenate([item_category, new_category])
        # a new product's appeal is drawn like the others' (its factors are never seen)
        all_appeal = np.concatenate([appeal, rng_new.standard_normal(n_new_items)])
    quality = judgment_rule(all_items, all_appeal, tiers)
    ratings, rater_noise = _marketer_ratings(
        rng_ratings,
        all_category,
        quality,
        n_raters,
        min(ratings_per_rater, n_items + n_new_items),
        set_size,
    )
    return SyntheticData(
        interactions=interactions,
        items=items,
        ratings=ratings,
        user_factors=user_factors,
        item_factors=item_factors,
        item_bias=item_bias,
        item_quality=quality,
        item_category=item_category,
        rater_noise=rater_noise,
        new_items=new_items,
    )


# --------------------------------------------------------------------------------------------
# Generation parts


def _latent_factors(
    rng: np.random.Generator, n_users: int, n_items: int, n_factors: int, n_categories: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns user (U, d), item (I, d) factors, item category (I,), popularity logit (I,) at
    skew 1, and the standardised appeal (I,) (see :func:`judgment_rule`)."""
    # Orthonormal category centres (C, d): QR of a Gaussian gives a random rotation, so categories
    # are equally distinct whatever the seed.
    q, _ = np.linalg.qr(rng.standard_normal((n_factors, n_factors)))
    centres = q[:n_categories]

    # Balanced category sizes, in random item order.
    item_category = rng.permutation(np.arange(n_items) % n_categories)
    item_factors = centres[item_category] + rng.normal(0.0, 0.3, (n_items, n_factors))

    # Each user likes 1-3 categories: Dirichlet weights on those centres, scaled so that a liked
    # category's affinity is a few temperatures above an unliked one.
    n_liked = rng.integers(1, min(3, n_categories) + 1, size=n_users)
    weights = np.zeros((n_users, n_categories))
    for u in range(n_users):
        liked = rng.choice(n_categories, size=n_liked[u], replace=False)
        weights[u, liked] = rng.dirichlet(np.full(n_liked[u], 2.0))
    user_factors = 1.2 * weights @ centres + rng.normal(0.0, 0.25, (n_users, n_factors))

    # Zipf popularity: the item of popularity rank r gets logit -log(r); ranks are random so
    # popularity is independent of category.
    ranks = rng.permutation(n_items) + 1
    item_bias = -np.log(ranks.astype(float))

    # The item's position along a hidden "appeal" direction of the latent space: a small part of
    # the marketers' judgment rule that the interactions show too.
    direction = rng.standard_normal(n_factors)
    direction /= np.linalg.norm(direction)
    appeal = _standardise(item_factors @ direction)
    return user_factors, item_factors, item_category, item_bias, appeal


def _interactions(
    rng: np.random.Generator,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    item_bias: np.ndarray,
    *,
    mean_interactions: float,
    session_gap: int,
    item_category: np.ndarray,
) -> pd.DataFrame:
    n_users, n_items = user_factors.shape[0], item_factors.shape[0]
    affinity = user_factors @ item_factors.T  # (U, I)
    logits = affinity / TEMPERATURE + item_bias[None, :]

    # Per-user counts: 5 + lognormal with the right mean, capped so negatives remain to sample.
    excess = max(mean_interactions - 5.0, 1e-6)
    sigma = 0.6
    counts = 5 + np.round(rng.lognormal(np.log(excess) - sigma**2 / 2, sigma, n_users))
    counts = np.clip(counts, 5, max(5, n_items // 2)).astype(np.int64)

    # Gumbel top-k: argsort of logits + Gumbel noise gives a sample without replacement from the
    # softmax, in the order it would be drawn. (U, I)
    perturbed = logits + rng.gumbel(size=(n_users, n_items))
    order = np.argsort(-perturbed, axis=1)

    # Star ratings follow the affinity, standardised over the chosen (user, item) pairs (chosen
    # items already have high affinity; standardising over all pairs would give nearly all 5s),
    # plus noise; centred near MovieLens' mean of about 3.6 stars.
    chosen_mask = np.zeros((n_users, n_items), dtype=bool)
    for u in range(n_users):
        chosen_mask[u, order[u, : counts[u]]] = True
    chosen_aff = affinity[chosen_mask]
    z = (affinity - chosen_aff.mean()) / max(float(chosen_aff.std()), 1e-12)  # (U, I)
    stars_all = np.clip(np.round(3.6 + 1.0 * z + rng.normal(0.0, 0.6, z.shape)), 1, 5)

    users, items, stars, times = [], [], [], []
    span_seconds = ACTIVE_DAYS * DAY
    n_categories = int(item_category.max()) + 1
    for u in range(n_users):
        chosen = order[u, : counts[u]]
        # Time order: items of the same category tend to come together (a session browses a
        # category), which gives sequence models something to learn; the noise interleaves them.
        cat_key = rng.random(n_categories)
        key = cat_key[item_category[chosen]] + rng.normal(0.0, 0.25, chosen.size)
        chosen = chosen[np.argsort(key, kind="stable")]
        ts = _user_timestamps(rng, chosen.size, session_gap, span_seconds)
        users.append(np.full(chosen.size, u))
        items.append(chosen)
        stars.append(stars_all[u, chosen])
        times.append(ts)

    frame = pd.DataFrame(
        {
            "user": np.concatenate(users).astype(np.int64),
            "item": np.concatenate(items).astype(np.int64),
            "rating": np.concatenate(stars).astype(np.int64),
            "timestamp": np.concatenate(times).astype(np.int64),
        }
    )
    # Already sorted by user, then timestamp (strictly increasing within a user).
    gap = frame["timestamp"].diff().to_numpy()
    new_user = frame["user"].diff().to_numpy() != 0
    new_session = new_user | (gap > session_gap)
    frame["session"] = (np.cumsum(new_session) - 1).astype(np.int64)
    return frame


def _user_timestamps(
    rng: np.random.Generator, n: int, session_gap: int, span_seconds: int
) -> np.ndarray:
    """(n,) strictly increasing unix seconds: gaps of minutes, with occasional breaks of hours
    to days spread over a user-specific active span within the ``ACTIVE_DAYS`` window."""
    gaps = np.round(rng.exponential(150.0, n - 1)) + 5  # minutes apart, never zero
    is_break = rng.random(n - 1) < BREAK_PROBABILITY
    n_breaks = int(is_break.sum())
    if n_breaks:
        # Active span of 20-80 days shared among the breaks; each break also clears session_gap
        # so that it always starts a new session.
        active = rng.uniform(20, 80) * DAY
        gaps[is_break] = np.round(active * rng.dirichlet(np.ones(n_breaks))) + session_gap + 60
    total = float(gaps.sum())
    start = rng.uniform(0, max(span_seconds - total, 0.0))
    ts = START_TIMESTAMP + int(start) + np.concatenate([[0], np.cumsum(gaps)])
    return ts.astype(np.int64)


def _brand_tiers(rng: np.random.Generator) -> dict[str, int]:
    """The hidden tier of every brand: -1 budget, 0 standard, +1 premium."""
    brands = sorted({b for cat in _CATEGORIES for b in cat.brands})
    return {b: int(t) for b, t in zip(brands, rng.integers(-1, 2, size=len(brands)), strict=True)}


def judgment_rule(items: pd.DataFrame, appeal: np.ndarray, tiers: dict[str, int]) -> np.ndarray:
    """The marketers' hidden rule, standardised over the items::

        RULE_TIER * tier(brand) + RULE_WORDS * sum(QUALITY_WORDS of the title's words)
            + RULE_APPEAL * appeal

    Brand and title are in the item text, so a text tower can learn the rule and apply it to
    items nobody has interacted with; the appeal is the part the interactions show.
    """
    tier = items["brand"].map(tiers).to_numpy(dtype=np.float64)
    words = np.array(
        [sum(QUALITY_WORDS.get(w, 0.0) for w in t.lower().split()) for t in items["title"]]
    )
    return _standardise(RULE_TIER * tier + RULE_WORDS * words + RULE_APPEAL * appeal)


def _items(
    rng: np.random.Generator,
    item_category: np.ndarray,
    tiers: dict[str, int],
    first_id: int = 0,
) -> pd.DataFrame:
    n_items = item_category.size
    titles, categories, brands, descriptions, prices = [], [], [], [], []
    for i in range(n_items):
        cat = _CATEGORIES[item_category[i]]
        noun = str(rng.choice(cat.nouns))
        # 2-4 words: 1-3 modifiers (category words more often than generic ones), then the noun.
        n_mod = int(rng.integers(1, 4))
        pool = list(cat.modifiers) + list(_GENERIC_WORDS)
        p = np.array([2.0] * len(cat.modifiers) + [1.0] * len(_GENERIC_WORDS))
        mods = rng.choice(pool, size=n_mod, replace=False, p=p / p.sum())
        titles.append(" ".join(_cap(w) for w in [*mods, noun]))
        brand = str(rng.choice(cat.brands))
        uses = rng.choice(cat.uses, size=2, replace=False)
        adjective = str(rng.choice(cat.modifiers))
        generic = str(rng.choice(_GENERIC_WORDS))
        article = "An" if generic[0] in "aeiou" else "A"
        descriptions.append(
            f"{article} {generic} {adjective} {noun} by {brand}, made for {uses[0]} and {uses[1]}."
        )
        categories.append(cat.name)
        brands.append(brand)
        # Premium brands cost a little more; .99 endings look like shop prices.
        price = cat.base_price * np.exp(0.15 * tiers[brand] + rng.normal(0.0, 0.35))
        prices.append(max(round(price) - 0.01, 0.99))

    n_empty = int(round(EMPTY_DESCRIPTION_SHARE * n_items))
    for i in rng.choice(n_items, size=n_empty, replace=False):
        descriptions[i] = ""
    return pd.DataFrame(
        {
            "item": np.arange(first_id, first_id + n_items, dtype=np.int64),
            "title": titles,
            "category": categories,
            "brand": brands,
            "description": descriptions,
            "price": np.asarray(prices, dtype=np.float64),
        }
    )


def _marketer_ratings(
    rng: np.random.Generator,
    item_category: np.ndarray,
    quality: np.ndarray,
    n_raters: int,
    ratings_per_rater: int,
    set_size: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    n_items = item_category.size
    # Each segment has a taste for each category; in that context it adds to the judgment. (S, C)
    seg_taste = rng.standard_normal((len(SEGMENTS), len(_CATEGORIES)))

    noise = np.full(n_raters, RELIABLE_NOISE)
    if n_raters >= 2:
        noise[-1] = NOISY_NOISE  # the deliberately unreliable rater
    rows: list[pd.DataFrame] = []
    for r in range(n_raters):
        lo, hi = RATER_SCALES[r % len(RATER_SCALES)]
        # Uniform over items (not by popularity), so rarely interacted items get rated too.
        items = np.sort(rng.choice(n_items, size=ratings_per_rater, replace=False))
        has_ctx = rng.random(ratings_per_rater) < CONTEXT_SHARE
        seg = rng.integers(0, len(SEGMENTS), size=ratings_per_rater)
        effect = SEGMENT_EFFECT * seg_taste[seg, item_category[items]]
        latent = quality[items] + np.where(has_ctx, effect, 0.0)
        latent = latent + rng.normal(0.0, noise[r], ratings_per_rater)
        # Per-rater leniency (bias) then a logistic squash onto the rater's own scale.
        leniency = rng.normal(0.0, 0.3)
        unit = 1.0 / (1.0 + np.exp(-(1.2 * latent + leniency)))
        score = np.round(lo + unit * (hi - lo))
        stamps = START_TIMESTAMP + rng.integers(0, ACTIVE_DAYS * DAY, size=ratings_per_rater)
        frame = pd.DataFrame(
            {
                "rater": f"rater_{r}",
                "item": items.astype(np.int64),
                "context": np.where(has_ctx, np.asarray(SEGMENTS)[seg], ""),
                "score": score.astype(np.float64),
                "timestamp": stamps.astype(np.int64),
            }
        )
        if set_size > 0:
            # the items shown together: consecutive judgments (by time) of one context
            frame = frame.sort_values(["context", "timestamp"], kind="stable")
            position = frame.groupby("context").cumcount().to_numpy() // set_size
            label = np.where(frame["context"] == "", "all", frame["context"])
            frame["set"] = [f"r{r}-{c}-{k}" for c, k in zip(label, position, strict=True)]
        rows.append(frame)
    columns = {
        "rater": pd.Series([], dtype=object).astype(str),
        "item": np.array([], dtype=np.int64),
        "context": pd.Series([], dtype=object).astype(str),
        "score": np.array([], dtype=np.float64),
        "timestamp": np.array([], dtype=np.int64),
    }
    if set_size > 0:
        columns["set"] = pd.Series([], dtype=object).astype(str)
    if rows:
        ratings = pd.concat(rows, ignore_index=True)
        ratings = ratings.sort_values(["rater", "timestamp"], kind="stable", ignore_index=True)
    else:
        ratings = pd.DataFrame(columns)
    for name in ("rater", "context") + (("set",) if set_size > 0 else ()):
        ratings[name] = ratings[name].astype(str)
    return ratings, noise


def _standardise(x: np.ndarray) -> np.ndarray:
    std = float(x.std())
    return (x - x.mean()) / (std if std > 0 else 1.0)


def _cap(word: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in word.split("-"))
