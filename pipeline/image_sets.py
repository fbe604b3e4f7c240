"""The images a shard holds, per schema: their names, what each shows, one per model or example.

THA1 (spec section 4): a rest image per model, an expression and a posed image
per example. THA2 (wide-schemas.md section 3): the rest input and the seven
ground truths its eyebrow, eye-and-mouth and rotation networks train on. THA3 /
THA4 (section 4): the upper body's rest input, the face-morphed and the fully
posed image, and a mask of the eyes and mouth per model.

The wide schemas' rest input has its mouth open (mouth_aaa = 1) for 75% of
examples: the per-model images that show the rest pose come twice, ``<name>``
(mouth open) and ``<name>_closed``, and each example says which it uses
(``rest_mouth``). Every shard stores these definitions (attribute ``images``)
and the README lists them, so no consumer relies on a name alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PER = ("model", "example")


@dataclass(frozen=True)
class ImageSet:
    """One kind of image in a shard: ``name``, ``per`` model or example, what it shows."""

    name: str
    per: str
    shows: str
    closed_twin: bool = False  # a per-model image stored again with the mouth closed

    def to_dict(self) -> dict:
        return asdict(self)


THA1_IMAGES = (
    ImageSet("rest", "model", "the rest pose, mouth open (spec 4a)"),
    ImageSet("expression", "example", "the eye and mouth morphs only (4b)"),
    ImageSet("posed", "example", "the morphs and the rotations (4c)"),
)
THA2_IMAGES = (
    ImageSet("rest", "model", "the input: the rest pose (mouth per rest_mouth)", True),
    ImageSet("no_eyebrows", "model", "(a) the rest image without the eyebrows", True),
    ImageSet("eyebrows_rest", "model", "(b) the eyebrows alone at rest"),
    ImageSet("eyebrows_morphed", "example", "(c) the morphed eyebrows alone"),
    ImageSet("with_eyebrows", "example",
             "(d) the character with the morphed eyebrows, drawn over the hair: (c) over (a)"),
    ImageSet("irises_mouth", "example", "(e) (d) plus the irises (small, turned) and the mouth"),
    ImageSet("face_morphed", "example", "(f) every facial parameter: (e) plus the eyelids"),
    ImageSet("posed", "example", "(g) (f) plus the face rotation"),
)
THA3_IMAGES = (
    ImageSet("rest", "model", "the input: the upper body at rest (mouth per rest_mouth)",
             True),
    ImageSet("mask", "model", "the eyes and the mouth: where any of their parameters draws"),
    ImageSet("face_morphed", "example", "the 39 face values applied, no rotation"),
    ImageSet("posed", "example", "all 45 values: face, head, body and breathing"),
)
IMAGE_SETS = {"tha1": THA1_IMAGES, "tha2": THA2_IMAGES, "tha3": THA3_IMAGES}


def stored_names(images: tuple[ImageSet, ...], per: str) -> list[str]:
    """The datasets a shard has for ``per`` ("model" or "example") images, closed twins too."""
    names = []
    for image in images:
        if image.per == per:
            names.append(image.name)
            if image.closed_twin:
                names.append(f"{image.name}_closed")
    return names


def from_dicts(values) -> tuple[ImageSet, ...]:
    return tuple(ImageSet(**value) for value in values)
