"""Regenerate docs/wide_contact_sheet.png (THA2 and THA3 examples on real models) and
docs/tha3_arms.png (every real model at rest in THA3's frame, arms lowered).

    .venv/bin/python bench/wide_contact_sheet.py [--out docs/wide_contact_sheet.png]
        [--arms docs/tha3_arms.png]

For each model below (from ../shared/models, which must be present): its roles
as the annotator proposes them (`annotate scan --schema tha3`), then one
example of a THA2 run (256x256: the rest input and the seven ground truths)
and one of a THA3 run (512x512: rest, eyes-and-mouth mask, face-morphed,
posed), made by the real generator with its default settings. What to look
for: every image set named as the README describes it, the eyebrows over the
hair from (d) on, the arms hanging beside the body in THA3's frame. The arms
sheet shows every character model in ../shared at 512x512 as THA3's rest input
draws it: the arms must hang beside the body, through neither it nor the hair.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from annotate.auto import propose  # noqa: E402
from bench.wide_dataset import real_entry  # noqa: E402
from mmdrender.camera import Camera  # noqa: E402
from mmdrender.loader import load_model  # noqa: E402
from mmdrender.render import render  # noqa: E402
from mmdrender.schema_pose import SchemaPoser  # noqa: E402
from mmdrender.schemas import SCHEMAS  # noqa: E402
from mmdrender.sheet import Cell, Panel, compose_sheet  # noqa: E402
from pipeline.feature_poses import sampling_schema  # noqa: E402
from pipeline.generate import RunConfig, finish, plan, run_tasks  # noqa: E402
from pipeline.shard_reader import open_dataset  # noqa: E402

SHARED = PROJECT.parent / "shared" / "models"
MODELS = ("animasa_miku_v2/miku_v2.pmd", "animasa_kaito/kaito.pmd", "haku/haku.pmd",
          "mokou/mokou_B.pmd", "lat_miku_white/Lat式ミクVer2.31_White.pmd",
          "mamama_appearance_miku/index.pmx")
EXAMPLE = 1  # which example of each model to show (0 is as good; 1 shows a second draw)
HIGHLIGHTS = ("head_x", "head_y", "neck_z", "body_y", "body_z", "breathing",
              "iris_rotation_x", "iris_rotation_y")


def render_runs(out: Path) -> dict[str, Path]:
    entries = [real_entry(SHARED, relative, f"m{i}") for i, relative in enumerate(MODELS)]
    folders = {}
    for schema, size in (("tha2", 256), ("tha3", 512)):
        folder = out / schema
        config = RunConfig(out=folder, models_root=SHARED, examples_per_model=EXAMPLE + 1,
                           size=size, schema=sampling_schema(schema), models_per_shard=1)
        tasks = plan(entries, config)
        list(run_tasks(tasks, config, workers=2))
        finish(tasks, config)
        folders[schema] = folder
    return folders


def panels(folders: dict[str, Path]) -> list[Panel]:
    out = []
    for i, relative in enumerate(MODELS):
        for schema, folder in folders.items():
            data = open_dataset(folder)
            index = next(k for k in range(len(data))
                         if data[k].model_id == f"m{i}" and data[k].example == EXAMPLE)
            example = data[index]
            values = ", ".join(f"{name} {example.pose[data.schema.index(name)]:+.2f}"
                               for name in HIGHLIGHTS if name in data.schema.names)
            mouth = "open" if example.rest_mouth else "closed"
            title = f"{relative.split('/')[0]}  {schema}: {values}; rest mouth {mouth}"
            out.append(Panel(title, [Cell(image, name)
                                     for name, image in data.images(index).items()]))
    return out


def arms_sheet():
    """Every character model (not _robustness) at rest in THA3's frame, four to a row."""
    cells = []
    for path in sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".pmd", ".pmx")
                       and "_robustness" not in p.parts):
        model = load_model(path)
        proposal = propose(model, "tha3")
        camera = Camera.framing("upper_body", proposal.head_top_y.value,
                                proposal.head_bottom_y.value, proposal.centre_x, 512)
        poser = SchemaPoser(model, SCHEMAS["tha3"], proposal.rig(), lower_arms=True)
        cells.append(Cell(render(poser.pose({"mouth_aaa": 1.0}), camera),
                          path.relative_to(SHARED).parts[0]))
    rows = [Panel("", cells[i:i + 4]) for i in range(0, len(cells), 4)]
    return compose_sheet(rows, columns=1, cell_size=256,
                         title="THA3 rest inputs: arms lowered (upper arms 12 degrees out "
                               "from straight down)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "wide_contact_sheet.png")
    parser.add_argument("--arms", type=Path, default=PROJECT / "docs" / "tha3_arms.png")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print("../shared/models is absent: the sheets show real models; skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        sheet = compose_sheet(panels(render_runs(Path(tmp))), columns=1, cell_size=144,
                              title="THA2 (256x256) and THA3 (512x512) examples, "
                                    "roles as proposed, default settings")
    sheet.save(args.out, optimize=True)
    print(args.out)
    arms_sheet().save(args.arms, optimize=True)
    print(args.arms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
