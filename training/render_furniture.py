"""Render the textured products of Debian's sweethome3d-furniture to RGBA cut-outs (Blender).

    blender -b --factory-startup -P training/render_furniture.py -- OUT_DIR \
        [--views 3] [--res 256] [--samples 24] [--shard 0 --shards 2] [--seed 0]

Runs inside Blender's Python (Debian's `blender`, Cycles on the CPU). Every model listed in the
catalogues of /usr/share/sweethome3d/furniture/*.sh3f (zip archives of OBJ/MTL/textures plus a
`PluginFurnitureCatalog.properties` index) is stood upright with its catalogue rotation and
rendered from ``--views`` random viewpoints under random studio lighting on a transparent film,
so the PNG's alpha is the exact (anti-aliased) coverage of the product. The PNGs are foregrounds
for training.data (``--fg OUT_DIR``). Catalogue licences: CC0 and CC-BY-3.0 (see each
archive's LICENSE.TXT). Deterministic per (seed, model, view). Never imported by the daemon.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import bpy  # type: ignore[import-not-found]  # Blender's own module
import mathutils  # type: ignore[import-not-found]

CATALOGUES = Path("/usr/share/sweethome3d/furniture")
Y_UP_TO_Z_UP = mathutils.Matrix(((1, 0, 0), (0, 0, -1), (0, 1, 0)))  # what Blender's OBJ import applies


def catalogue(archive: zipfile.ZipFile) -> list[dict[str, str]]:
    """The models of one archive: {'id', 'model', 'rotation'?} from its properties index."""
    text = archive.read("PluginFurnitureCatalog.properties").decode("latin-1")
    entries: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if "#" not in line.split("=", 1)[0] or "=" not in line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        field, index = key.rsplit("#", 1)
        entries.setdefault(index, {})[field] = value.strip()
    return [
        {"id": e["id"], "model": e["model"].lstrip("/"), "rotation": e.get("modelRotation", "")}
        for e in entries.values()
        if "id" in e and e.get("model", "").lower().endswith(".obj") and e.get("doorOrWindow") != "true"
    ]


def clear_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def import_model(obj_path: Path, rotation: str) -> list:
    bpy.ops.wm.obj_import(filepath=str(obj_path))
    objects = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    missing = []
    for image in bpy.data.images:
        if image.source != "FILE" or Path(bpy.path.abspath(image.filepath)).exists():
            continue
        # Some MTL files name textures by the modeller's own absolute (Windows) paths; the
        # file itself usually sits beside the OBJ.
        name = image.filepath.replace("\\", "/").rsplit("/", 1)[-1]
        found = next(obj_path.parent.rglob(name), None)
        if found is None:
            missing.append(name)
        else:
            image.filepath = str(found)
            image.reload()
    if missing:  # Blender would paint these surfaces magenta
        raise ValueError(f"missing textures {missing[:3]}")
    if rotation:  # catalogue rotation, a row-major 3x3 in the model's Y-up frame
        r = [float(v) for v in rotation.split()]
        upright = mathutils.Matrix((r[0:3], r[3:6], r[6:9]))
        m = (Y_UP_TO_Z_UP @ upright @ Y_UP_TO_Z_UP.inverted()).to_4x4()
        for o in objects:
            o.matrix_world = m @ o.matrix_world
    return objects


def bounds(objects: list) -> tuple:
    bpy.context.view_layer.update()
    pts = [o.matrix_world @ mathutils.Vector(c) for o in objects for c in o.bound_box]
    lo = mathutils.Vector([min(p[i] for p in pts) for i in range(3)])
    hi = mathutils.Vector([max(p[i] for p in pts) for i in range(3)])
    return (lo + hi) / 2, max(hi - lo)


def aim(obj, target) -> None:
    obj.rotation_euler = (target - obj.location).to_track_quat("-Z", "Y").to_euler()


def stage(rng: random.Random, centre, size: float, res: int, samples: int) -> None:
    """Camera on a random bearing and height, 2-4 area lights, grey world, transparent film."""
    scene = bpy.context.scene
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.data.lens = rng.uniform(35, 85)
    azimuth, elevation = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(0, 40))
    distance = size * cam.data.lens / 36 * rng.uniform(1.5, 2.2)  # object fills much of the frame, uncut
    cam.location = centre + distance * mathutils.Vector(
        (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
    )
    aim(cam, centre)
    scene.camera = cam
    for i in range(rng.randint(2, 4)):
        light = bpy.data.lights.new(f"l{i}", "AREA")
        light.energy = rng.uniform(20, 160) * size * size  # irradiance ~ energy / (1.5 size)^2
        light.size = size * rng.uniform(0.5, 2)
        light.color = (1, rng.uniform(0.9, 1), rng.uniform(0.85, 1))
        lamp = bpy.data.objects.new(f"l{i}", light)
        scene.collection.objects.link(lamp)
        a, e = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(10, 80))
        lamp.location = centre + 1.5 * size * mathutils.Vector(
            (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))
        )
        aim(lamp, centre)
    world = bpy.data.worlds.new("w")
    grey = rng.uniform(0.3, 0.8)
    world.color = (grey, grey, grey)
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 1
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = res
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="render_furniture.py")
    ap.add_argument("out", type=Path)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--shard", type=int, default=0)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="models per shard (0: all)")
    args = ap.parse_args(argv)
    markers = args.out / ".started"
    markers.mkdir(parents=True, exist_ok=True)
    done = failed = 0
    started = time.time()
    for archive_path in sorted(CATALOGUES.glob("*.sh3f")):
        with zipfile.ZipFile(archive_path) as archive, tempfile.TemporaryDirectory() as tmp:
            models = catalogue(archive)
            mine = [m for i, m in enumerate(models) if i % args.shards == args.shard]
            if args.limit:
                mine = mine[: args.limit]
            if not mine:
                continue
            archive.extractall(tmp)
            for model in mine:
                stem = "".join(c if c.isalnum() or c in "-." else "_" for c in model["id"])
                if all((args.out / f"{stem}_{v}.png").exists() for v in range(args.views)):
                    done += 1
                    continue
                # A few models crash Blender itself (a segfault in the OBJ importer): the marker
                # outlives such a crash, and render.sh's restart skips the model.
                marker = markers / stem
                if marker.exists():
                    failed += 1
                    print(f"RENDER_FAILED {model['id']}: crashed Blender on an earlier run", flush=True)
                    continue
                marker.touch()
                try:
                    clear_scene()
                    objects = import_model(Path(tmp) / model["model"], model["rotation"])
                    if not objects:
                        raise ValueError("no mesh")
                    centre, size = bounds(objects)
                    for view in range(args.views):
                        target = args.out / f"{stem}_{view}.png"
                        if target.exists():
                            continue
                        for o in [o for o in bpy.data.objects if o.type in ("CAMERA", "LIGHT")]:
                            bpy.data.objects.remove(o)
                        stage(random.Random(f"{args.seed}/{stem}/{view}"), centre, size, args.res, args.samples)
                        bpy.context.scene.render.filepath = str(target)
                        bpy.ops.render.render(write_still=True)
                    done += 1
                except Exception as e:  # one broken model must not stop the run
                    failed += 1
                    print(f"RENDER_FAILED {model['id']}: {e}", flush=True)
                marker.unlink()
            print(
                f"RENDER_PROGRESS {archive_path.name}: {done} models done, {failed} failed, "
                f"{time.time() - started:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else [])
