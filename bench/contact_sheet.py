"""Regenerate docs/contact_sheet.png: every model at rest and in two poses.

    .venv/bin/python bench/contact_sheet.py [--out docs/contact_sheet.png] [--size 128]

Models: every .pmd/.pmx under ../shared/models (when present) and the five
sample characters (written to a temporary folder). Real models use the
MorphMapping defaults (ウィンク右 / ウィンク / あ); where a model lacks one,
the ウインク spelling is tried, then the pose falls back to the other eye or to
a both-eye まばたき, and the caption says what was used. Sample characters use
their ground truth. Models without a 頭 bone (two _robustness files) are shown
at rest only, framed on their bounding box.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from mmdrender import MMDRenderError, load_model  # noqa: E402
from mmdrender.camera import Camera, estimate_head_bounds  # noqa: E402
from mmdrender.gl import Renderer  # noqa: E402
from mmdrender.gl.context import get_context  # noqa: E402
from mmdrender.pose import MorphMapping, Poser  # noqa: E402
from mmdrender.samples import SAMPLE_NAMES, sample_truth, write_samples  # noqa: E402
from mmdrender.sheet import Cell, Panel, compose_sheet  # noqa: E402

SHARED_MODELS = PROJECT.parent / "shared" / "models"
POSE_A = {"head_x": 0.8, "head_y": 0.8}  # + a closed left eye
POSE_B = {"head_x": -0.8, "neck_z": 0.8}  # + the mouth open
SPELLINGS = {"wink_left": ("ウィンク右", "ウインク右"), "wink_right": ("ウィンク", "ウインク"),
             "mouth_open": ("あ",)}


@dataclass
class Entry:
    label: str
    path: Path
    truth: object = None  # SampleTruth for the sample characters


def real_mapping(model) -> MorphMapping:
    found = {field: next((n for n in names if model.morph_index(n) is not None), None)
             for field, names in SPELLINGS.items()}
    return MorphMapping(**found)


def eye_pose(model, mapping: MorphMapping) -> tuple[dict, dict, str]:
    """(params, morphs, caption) closing one eye, or both when the model has no wink."""
    if mapping.wink_left:
        return {"eye_left": 1.0}, {}, "eye_L"
    if mapping.wink_right:
        return {"eye_right": 1.0}, {}, "eye_R (no L wink)"
    if model.morph_index("まばたき") is not None:
        return {}, {"まばたき": 1.0}, "blink (no wink)"
    return {}, {}, "no eye morph"


def render_entry(renderer: Renderer, entry: Entry, size: int) -> Panel:
    model = load_model(entry.path)
    if entry.truth is not None:
        t = entry.truth
        mapping = MorphMapping(t.wink_left, t.wink_right, t.mouth_open)
        camera = Camera.from_head_bounds(t.head_top_y, t.head_bottom_y,
                                         model.bone("頭").position[0], size)
    else:
        mapping = real_mapping(model)
        camera = None
    poser = Poser(model, mapping)
    if model.bone_index("頭") is None:
        low, high = model.vertices.positions.min(0), model.vertices.positions.max(0)
        camera = Camera.from_head_bounds(high[1] + 0.01 * (high[1] - low[1]),
                                         (low[1] + high[1]) / 2, (low[0] + high[0]) / 2, size)
        with renderer.prepare(model) as scene:
            rest = scene.draw(poser.pose(), camera)
        note = "no head bone: cannot pose"
        return Panel(f"{entry.label}  [no head bone; bbox framing]",
                     [Cell(rest, "rest"), Cell(None, "pose A", note), Cell(None, "pose B", note)])
    if camera is None:
        top, bottom, centre_x = estimate_head_bounds(model)
        camera = Camera.from_head_bounds(top, bottom, centre_x, size)
    eye_params, eye_morphs, eye_caption = eye_pose(model, mapping)
    mouth = {"mouth": 1.0} if mapping.mouth_open else {}
    cells = []
    with renderer.prepare(model) as scene:
        for params, morphs, caption in (
            ({}, {}, "rest"),
            ({**POSE_A, **eye_params}, eye_morphs, f"hx+.8 hy+.8 {eye_caption}"),
            ({**POSE_B, **mouth}, {}, "hx-.8 nz+.8 " + ("mouth" if mouth else "(no mouth morph)")),
        ):
            try:
                image = scene.draw(poser.pose(params, morphs), camera)
            except MMDRenderError as error:
                cells.append(Cell(None, caption, str(error)))
                continue
            cells.append(Cell(image, caption))
    return Panel(entry.label, cells)


def entries(sample_dir: Path) -> list[Entry]:
    found = []
    if SHARED_MODELS.is_dir():
        for path in sorted(p for p in SHARED_MODELS.rglob("*")
                           if p.suffix.lower() in (".pmd", ".pmx")):
            folder = path.parent.relative_to(SHARED_MODELS)
            plain = path.stem.isascii() and path.stem != "index"
            label = f"{folder}/{path.name}" if plain else str(folder)
            found.append(Entry(label, path))
    for path in write_samples(sample_dir):
        if path.stem in SAMPLE_NAMES:
            found.append(Entry(f"sample: {path.stem}", path, sample_truth(path.stem)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "contact_sheet.png")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--columns", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    panels = []
    with tempfile.TemporaryDirectory() as tmp, \
            Renderer(get_context(), size=args.size) as renderer:
        for entry in entries(Path(tmp)):
            try:
                panels.append(render_entry(renderer, entry, args.size))
            except MMDRenderError as error:
                print(f"{entry.label}: {error}", file=sys.stderr)
                panels.append(Panel(entry.label, [Cell(None, "failed", str(error))]))
    sheet = compose_sheet(panels, columns=args.columns, cell_size=args.size,
                          title="mmdrender contact sheet: rest | head_x+.8 head_y+.8 + one eye "
                                "closed | head_x-.8 neck_z+.8 + mouth open (phong, 15 deg)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    if args.out.stat().st_size > 1_500_000:  # keep the repository light: 256 colours
        sheet.quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(args.out, optimize=True)
    print(f"{args.out}: {len(panels)} models, {sheet.width}x{sheet.height}, "
          f"{args.out.stat().st_size / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
