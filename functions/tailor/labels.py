"""The human-parsing labels tailor reads (`mattmdjaga/segformer_b2_clothes`, 18 labels).

`LABELS` names them in the parser's order; each has a constant (FACE, UPPER_CLOTHES, ...);
groups (ARMS, LEGS, BODY, CLOTHES, ACCESSORIES, PROTECTED) and, per category, the labels a
person mask repaints (REGION_LABELS), that vote on a garment photo (VOTE_LABELS) and that a
cut-out keeps (CUTOUT_LABELS).
"""

from __future__ import annotations

from functions.tailor import CATEGORIES

LABELS: tuple[str, ...] = (
    "background",
    "hat",
    "hair",
    "sunglasses",
    "upper-clothes",
    "skirt",
    "pants",
    "dress",
    "belt",
    "left-shoe",
    "right-shoe",
    "face",
    "left-leg",
    "right-leg",
    "left-arm",
    "right-arm",
    "bag",
    "scarf",
)
(
    BACKGROUND,
    HAT,
    HAIR,
    SUNGLASSES,
    UPPER_CLOTHES,
    SKIRT,
    PANTS,
    DRESS,
    BELT,
    LEFT_SHOE,
    RIGHT_SHOE,
    FACE,
    LEFT_LEG,
    RIGHT_LEG,
    LEFT_ARM,
    RIGHT_ARM,
    BAG,
    SCARF,
) = range(18)

ARMS = (LEFT_ARM, RIGHT_ARM)
LEGS = (LEFT_LEG, RIGHT_LEG)
BODY = (HAIR, FACE, *LEGS, *ARMS)
CLOTHES = (UPPER_CLOTHES, SKIRT, PANTS, DRESS, BELT, SCARF)
ACCESSORIES = (HAT, SUNGLASSES, BELT, LEFT_SHOE, RIGHT_SHOE, BAG, SCARF)
PROTECTED = (FACE, HAIR, HAT, SUNGLASSES)

#: Labels repainted on a person for each category (hands are then taken out).
REGION_LABELS: dict[str, tuple[int, ...]] = {
    "upper": (UPPER_CLOTHES, DRESS, *ARMS),
    "lower": (PANTS, SKIRT, BELT, *LEGS),
    "overall": (*CLOTHES, *ARMS, *LEGS),
}
#: Labels that vote for each category on a garment photo.
VOTE_LABELS: dict[str, tuple[int, ...]] = {
    "upper": (UPPER_CLOTHES,),
    "lower": (PANTS, SKIRT),
    "overall": (DRESS,),
}
#: Labels cut out of a garment photo for each category.
CUTOUT_LABELS: dict[str, tuple[int, ...]] = {
    "upper": (UPPER_CLOTHES, DRESS),
    "lower": (PANTS, SKIRT, BELT),
    "overall": (UPPER_CLOTHES, SKIRT, PANTS, DRESS, BELT),
}
# Each table has one entry per garment category of the contract (shared/contracts/fields.py).
assert all(set(table) == set(CATEGORIES) for table in (REGION_LABELS, VOTE_LABELS, CUTOUT_LABELS))
