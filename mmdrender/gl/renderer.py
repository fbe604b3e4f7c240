"""Draws a posed model into an RGBA image, MMD's way.

The renderer issues GL calls on a context it is given (see
:mod:`mmdrender.gl.context`); it never creates one. A :class:`Renderer` owns
the programs and framebuffers for one image size; :meth:`Renderer.prepare`
uploads one model's static data (faces, textures) into a :class:`ModelScene`,
whose :meth:`ModelScene.draw` writes the pose's vertex arrays and draws.

Draw semantics, as in MMD: materials in file order; depth test (LEQUAL) and
depth writes on for every material; alpha blending for every material; back
faces culled unless the material is double-sided (two-sided lighting then
flips the normal of back faces); fragments whose alpha is below 1/255
discarded (so cut-out texels leave no hole in later materials' depth);
materials whose diffuse alpha is 0 after morphs (below 1/255) not drawn at
all (that is how expression overlays are hidden). Outlines (MMD's edges) and
shadows are not drawn. Lighting works on the stored 8-bit sRGB values
directly, as MMD does; see the shaders for the formulas.

Speed: llvmpipe runs both sides of every branch and tests depth before
shading only for shaders that never discard, so each material is drawn with a
shader variant that has just what it needs (:class:`ShaderVariant`): its
texture, sphere and toon lookups only if it has them, the alpha test only when
its texture has (near-)transparent texels or its alpha is tiny, two-sided
lighting only when double-sided, specular only when it has some. Variants give
the same pixels as one shader with run-time branches would, 10-20% faster.

Images: drawn in premultiplied alpha onto (0, 0, 0, 0) at ``supersample``
times the size (optionally multisampled, then resolved), box-filtered down to
the size, read back, flipped to first row = top and un-premultiplied, so every
pixel the character does not touch is exactly (0, 0, 0, 0).

Anti-aliasing defaults to 2x2 supersampling rather than 4x MSAA. On llvmpipe
(every machine without a GPU) MSAA multiplies the cost of each triangle, and
MMD models are tens of thousands of small ones: 2x2 supersampling renders
1.2-1.5x as many posed images per second as 4x MSAA (bench/render.py). Supersampling
also smooths what MSAA leaves jagged: alpha-tested hair cut-outs, texture
detail and specular highlights. On a GPU both are cheap; ``samples`` adds MSAA
on top where wanted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from importlib import resources

import moderngl
import numpy as np
from PIL import Image

from mmdrender.camera import Camera
from mmdrender.errors import RenderError, TextureError
from mmdrender.gl.context import collect, unbind_framebuffer
from mmdrender.gl.redraw import DrawInputs, redraw_box
from mmdrender.model import Model, SphereMode, TextureRef
from mmdrender.posed import PosedModel
from mmdrender.textures import load_texture

SHADINGS = ("phong", "toon")
ALPHA_VISIBLE = 1.0 / 255.0  # below this a fragment is discarded, a material skipped
DEFAULT_SUPERSAMPLE = 2  # 2x2 supersampling: the anti-aliasing (see the module docstring)
DEFAULT_SAMPLES = 0  # no MSAA on top

# Texture units of the diffuse, sphere and toon textures.
_DIFFUSE_UNIT, _SPHERE_UNIT, _TOON_UNIT = 0, 1, 2
_MATERIAL_BLOCK = 0
_MATERIAL_VEC4S = 8  # the std140 Material block in the shaders
# Materials whose lowest possible alpha is at least this are drawn without the
# alpha test: no fragment of theirs can fall below 1/255, even with filtering
# error, and llvmpipe tests depth early for shaders that never discard.
_NO_TEST_ALPHA = np.float32(2.0 / 255.0)
KEPT_FRAMES = 4  # frames a scene keeps for later draws to start from (ModelScene.draw)


def load_shader(name: str, defines: dict[str, int] | None = None) -> str:
    """The source of ``mmdrender/gl/shaders/<name>`` (installed as package data).

    ``defines`` are inserted as ``#define NAME VALUE`` lines after the ``#version`` line.
    """
    source = resources.files("mmdrender.gl").joinpath("shaders", name).read_text(encoding="utf-8")
    if not defines:
        return source
    version, _, rest = source.partition("\n")
    return "\n".join([version, *(f"#define {k} {int(v)}" for k, v in defines.items()), rest])


@dataclass(frozen=True)
class ShaderVariant:
    """What one material's shader computes; each variant is compiled once per renderer.

    The first three follow from the model (``sphere_mode`` is the
    :class:`~mmdrender.model.SphereMode` value, 0 without a sphere texture),
    the last three from the material's state after morphs.
    """

    texture: bool = True
    sphere_mode: int = int(SphereMode.MULTIPLY)
    toon_ramp: bool = True  # used in toon shading only
    alpha_test: bool = True
    two_sided: bool = True
    specular: bool = True

    def defines(self, shading: str) -> dict[str, int]:
        """The shader's #defines (see material.frag.glsl)."""
        toon = shading == "toon"
        flags = {"TOON": toon, "TEXTURE": self.texture, "TOON_RAMP": toon and self.toon_ramp,
                 "ALPHA_TEST": self.alpha_test, "TWO_SIDED": self.two_sided,
                 "SPECULAR": self.specular}
        return {"SPHERE_MODE": self.sphere_mode} | {name: 1 for name, on in flags.items() if on}


@dataclass(frozen=True)
class Lights:
    """One white ambient light and one white directional light.

    ``direction`` is where the directional light *shines* (default along -z,
    from the viewer towards the character's front, which minimises shadows).
    Magnitudes multiply 8-bit sRGB colours directly (as MMD does).
    """

    ambient: float = 0.5
    directional: float = 0.5
    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)

    def __post_init__(self):
        try:
            direction = tuple(float(c) for c in self.direction)
            values = (float(self.ambient), float(self.directional), *direction)
        except (TypeError, ValueError):
            raise ValueError(f"Lights needs numbers and a 3-vector direction, not {self}") from None
        if len(direction) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"Lights needs finite numbers and a 3-vector direction, not {self}")
        object.__setattr__(self, "direction", direction)
        if self.ambient < 0 or self.directional < 0:
            raise ValueError(f"light magnitudes must not be negative: {self}")
        if math.hypot(*self.direction) == 0:
            raise ValueError("Lights.direction must not be the zero vector")

    @classmethod
    def sample(cls, rng, version: str = "tha1") -> Lights:
        """Random lights as the papers sampled them, from ``rng`` (a Generator or a seed).

        ``"tha1"``: ambient uniform in [0.5, 1.2], directional 0.5.
        ``"tha2"``: ambient uniform in [0.5, 0.75], directional in [0.5, 1.25].
        """
        rng = np.random.default_rng(rng)
        if version == "tha1":
            return cls(ambient=float(rng.uniform(0.5, 1.2)))
        if version == "tha2":
            ambient = float(rng.uniform(0.5, 0.75))
            return cls(ambient=ambient, directional=float(rng.uniform(0.5, 1.25)))
        raise ValueError(f"unknown light sampling {version!r}; expected 'tha1' or 'tha2'")

    @property
    def towards_light(self) -> tuple[float, float, float]:
        """Unit vector from a surface towards the light (minus ``direction``)."""
        length = math.hypot(*self.direction)
        return tuple(-float(c) / length for c in self.direction)


class Renderer:
    """Programs and framebuffers for ``size`` x ``size`` images on a given context.

    Parameters
    ----------
    ctx : the moderngl context (from :func:`mmdrender.gl.context.get_context`).
    size : image side in pixels.
    samples : MSAA samples; clipped to what the context supports, 0 for none.
    shading : ``"phong"`` (the dataset's default) or ``"toon"`` (MMD-like).
    lights : default lights for draws that do not pass their own.
    supersample : draw at this many times ``size`` per side and box-filter
        down (2: 2x2 supersampling, the default; 1: off).
    """

    def __init__(
        self,
        ctx: moderngl.Context,
        size: int = 256,
        samples: int = DEFAULT_SAMPLES,
        shading: str = "phong",
        lights: Lights | None = None,
        supersample: int = DEFAULT_SUPERSAMPLE,
    ):
        if shading not in SHADINGS:
            raise ValueError(f"unknown shading {shading!r}; expected one of {SHADINGS}")
        _check_count("size", size, 1)
        _check_count("samples", samples, 0)
        _check_count("supersample", supersample, 1)
        self.max_texture_size = int(ctx.info.get("GL_MAX_TEXTURE_SIZE", 8192))
        if size * supersample > self.max_texture_size:
            raise ValueError(f"size {size} x supersample {supersample} exceeds this GL's "
                             f"largest image side, {self.max_texture_size} pixels")
        self.ctx = ctx
        self.size = int(size)
        self.supersample = int(supersample)
        self.shading = shading
        self.lights = lights if lights is not None else Lights()
        self._objects: list = []
        self._programs: dict[ShaderVariant, moderngl.Program] = {}
        self.program(ShaderVariant())  # compile now: shader errors surface here
        self.samples = self._make_framebuffers(min(int(samples), ctx.max_samples))
        self._downsample = self._make_downsample() if self.supersample > 1 else None
        alignment = int(ctx.info.get("GL_UNIFORM_BUFFER_OFFSET_ALIGNMENT", 256))
        self.material_stride = -(-_MATERIAL_VEC4S * 16 // alignment) * alignment

    def program(self, variant: ShaderVariant) -> moderngl.Program:
        """The shading program for ``variant``, compiled on first use."""
        program = self._programs.get(variant)
        if program is not None:
            return program
        try:
            program = self.ctx.program(
                vertex_shader=load_shader("mesh.vert.glsl"),
                fragment_shader=load_shader("material.frag.glsl", variant.defines(self.shading)),
            )
        except moderngl.Error as error:
            raise RenderError(f"cannot compile the {self.shading} shaders: {error}") from error
        self._objects.append(program)
        for name, unit in (("diffuse_texture", _DIFFUSE_UNIT), ("sphere_texture", _SPHERE_UNIT),
                           ("toon_texture", _TOON_UNIT)):
            if name in program:  # compiled out of variants that lack it
                program[name].value = unit
        program["Material"].binding = _MATERIAL_BLOCK
        self._programs[variant] = program
        return program

    def _make_framebuffers(self, samples: int) -> int:
        """The framebuffers; returns the MSAA samples used.

        ``target`` is drawn into (``supersample`` times the size, multisampled
        when ``samples``); ``resolved`` holds it without multisampling (the
        target itself when not multisampled); ``output`` is read back: the
        ``size`` x ``size`` box-filtered image when supersampling, else ``resolved``.
        """
        ctx, shape = self.ctx, (self.size * self.supersample,) * 2
        while True:
            made = []
            try:
                # Supersampling reads the drawn image as a texture; MSAA resolves first.
                sampled = self.supersample > 1 and not samples
                made.append(ctx.texture(shape, 4) if sampled
                            else ctx.renderbuffer(shape, components=4, samples=samples))
                made.append(ctx.depth_renderbuffer(shape, samples=samples))
                made.append(ctx.framebuffer(color_attachments=[made[0]], depth_attachment=made[1]))
            except moderngl.Error as error:
                for obj in reversed(made):
                    obj.release()
                if samples == 0:
                    raise RenderError(f"cannot create a {self.size}x{self.size} framebuffer: "
                                      f"{error}") from error
                samples = 0  # multisampling unsupported here: draw without it
                continue
            self._objects += made
            self.target = made[2]
            break
        self.resolved = self.output = self.target
        if samples:
            colour = ctx.texture(shape, 4) if self.supersample > 1 else \
                ctx.renderbuffer(shape, components=4)
            self.resolved = self.output = ctx.framebuffer(color_attachments=[colour])
            self._objects += [colour, self.resolved]
        if self.supersample > 1:
            colour = ctx.renderbuffer((self.size, self.size), components=4)
            self.output = ctx.framebuffer(color_attachments=[colour])
            self._objects += [colour, self.output]
        return samples

    def _make_downsample(self) -> moderngl.VertexArray:
        """The box filter from ``resolved`` to ``output``: a full-screen triangle."""
        try:
            program = self.ctx.program(
                vertex_shader=load_shader("fullscreen.vert.glsl"),
                fragment_shader=load_shader("downsample.frag.glsl",
                                            {"FACTOR": self.supersample}),
            )
        except moderngl.Error as error:
            raise RenderError(f"cannot compile the supersampling filter: {error}") from error
        self._objects.append(program)
        program["image"].value = 0
        vao = self.ctx.vertex_array(program, [])
        self._objects.append(vao)
        return vao

    def prepare(self, model: Model) -> ModelScene:
        """Upload ``model``'s faces and textures; the scene draws any pose of it."""
        collect(self.ctx)
        return ModelScene(self, model)

    def release(self) -> None:
        """Free the programs and framebuffers (release the scenes first)."""
        unbind_framebuffer(self.ctx)  # never leave a deleted framebuffer bound
        for obj in reversed(self._objects):
            obj.release()
        self._objects.clear()
        self._programs.clear()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def read(self) -> np.ndarray:
        """The image drawn: (size, size, 4) uint8 sRGB RGBA, straight alpha, first row = top.

        Resolves the multisampled target, box-filters the supersampled image
        down, reads it back, flips the rows (GL's first row is the bottom) and
        un-premultiplies: rgb = round(rgb * 255 / a) (halves up), and
        (0, 0, 0, 0) wherever a = 0.
        """
        return straight_alpha(self.read_premultiplied(), self.size)

    def read_premultiplied(self) -> bytearray:
        """The image drawn as GL holds it: premultiplied RGBA bytes, the bottom row first
        (multisampling resolved, supersampling filtered down)."""
        ctx = self.ctx
        if self.samples:
            ctx.copy_framebuffer(self.resolved, self.target)
        if self._downsample is not None:
            self.output.use()
            ctx.disable(moderngl.DEPTH_TEST | moderngl.BLEND | moderngl.CULL_FACE)
            self.resolved.color_attachments[0].use(0)
            self._downsample.render(moderngl.TRIANGLES, vertices=3)
        pixels = bytearray(self.size * self.size * 4)
        self.output.read_into(pixels, components=4, alignment=1)
        return pixels


def straight_alpha(pixels, size: int) -> np.ndarray:
    """GL's premultiplied RGBA rows (bottom first) as the image: (size, size, 4) uint8,
    first row = top, rgb = round(rgb * 255 / a) (halves up), (0, 0, 0, 0) where a = 0."""
    # One uint32 per pixel, bytes R, G, B, A in memory order.
    packed = np.frombuffer(pixels, np.uint32).reshape(size, size)[::-1].copy()
    alpha = packed.view(np.uint8).reshape(size, size, 4)[..., 3]
    packed *= alpha != 0  # the background is exactly (0, 0, 0, 0)
    flat = packed.view(np.uint8).reshape(-1, 4)
    partial = np.flatnonzero((alpha.reshape(-1) - np.uint8(1)) < 254)  # 0 < a < 255
    if partial.size:
        chosen = flat[partial]
        chosen[:, :3] = _UNPREMULTIPLY[chosen[:, 3:4], chosen[:, :3]]
        flat[partial] = chosen
    return packed.view(np.uint8).reshape(size, size, 4)


def _unpremultiply_table() -> np.ndarray:
    """(256, 256) uint8: [a, c] = round(c * 255 / a) (halves up, at most 255); [0, c] = 0."""
    a = np.arange(256, dtype=np.int64)[:, None]
    c = np.arange(256, dtype=np.int64)[None, :]
    table = np.minimum((2 * 255 * c + a) // np.maximum(2 * a, 1), 255)
    table[0] = 0
    return table.astype(np.uint8)


_UNPREMULTIPLY = _unpremultiply_table()


def _check_count(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an int of at least {least}, not {value!r}")


@dataclass(frozen=True)
class _DrawCall:
    """One material's static draw state."""

    material: int
    first: int  # first index (3 per triangle)
    count: int  # number of indices
    variant: ShaderVariant  # its static part; alpha test and specular follow the state
    textures: tuple  # (diffuse, sphere, toon) textures, None where the variant has none


class ModelScene:
    """One model's GPU data on a renderer: faces, textures and dynamic vertex buffers.

    Draw any :class:`PosedModel` of the same model with :meth:`draw`; free the
    GPU objects with :meth:`release` (or use the scene as a context manager).
    ``warnings`` lists textures that could not be decoded or uploaded and were
    replaced by neutral stand-ins.
    """

    def __init__(self, renderer: Renderer, model: Model):
        self.renderer = renderer
        self.model = model
        self.warnings: list[str] = []
        self._objects: list = []
        self._vaos: dict[ShaderVariant, moderngl.VertexArray] = {}
        self._released = False
        self._material_bytes = b""  # the uniform block as last uploaded
        self._visible = self._alpha_test = self._specular = np.zeros(0, bool)
        self._kept: list[tuple[DrawInputs, moderngl.Framebuffer]] = []  # see draw(remember=)
        # What the last draw drew anew: (x, y, width, height) in GL pixels of the
        # (supersampled) target, first row at the bottom; None: the whole frame.
        self.redrawn_box: tuple[int, int, int, int] | None = None
        renderer.ctx.error  # noqa: B018  (reading clears an error left by earlier GL calls)
        try:
            self._upload(renderer.ctx, renderer, model)
        except Exception:
            self.release()
            raise

    def _keep(self, obj):
        self._objects.append(obj)
        return obj

    def _upload(self, ctx: moderngl.Context, renderer: Renderer, model: Model) -> None:
        count = len(model.vertices)
        size = max(count, 1)  # GL buffers cannot be empty
        self._positions = self._keep(ctx.buffer(reserve=size * 12, dynamic=True))
        self._normals = self._keep(ctx.buffer(reserve=size * 12, dynamic=True))
        self._uvs = self._keep(ctx.buffer(reserve=size * 8, dynamic=True))
        extra = model.vertices.extra_uvs
        if extra.ndim == 3 and extra.shape[0] == count and extra.shape[1] > 0:
            sub_uvs = extra[:, 0, :2]
        else:
            sub_uvs = np.zeros((size, 2), np.float32)
        self._rest_sub_uvs = np.ascontiguousarray(sub_uvs, dtype=np.float32)
        self._sub_uvs = self._keep(ctx.buffer(self._rest_sub_uvs, dynamic=True))
        self._sub_uvs_drawn = None  # the posed additional UV 1 in the buffer; None: the rest
        faces = np.ascontiguousarray(model.faces, dtype=np.int32)
        self._indices = self._keep(ctx.buffer(faces if faces.size else np.zeros(3, np.int32)))
        materials = model.materials
        self._material_buffer = self._keep(ctx.buffer(
            reserve=max(len(materials), 1) * renderer.material_stride, dynamic=True))

        cache: dict = {}
        toon = renderer.shading == "toon"
        self._texture_alpha = np.ones(len(materials), np.float32)  # lowest; 1 without one
        self._calls: list[_DrawCall] = []
        self._uses_sub_uvs = False
        for i, m in enumerate(materials):
            if m.face_count == 0:
                continue  # never drawn (a face subset, see Model.with_faces): no texture needed
            has_sphere = m.sphere_mode != SphereMode.NONE and _found(m.sphere)
            variant = ShaderVariant(
                texture=_found(m.texture),
                sphere_mode=int(m.sphere_mode) if has_sphere else int(SphereMode.NONE),
                toon_ramp=toon and _found(m.toon),  # phong has no toon ramp
                two_sided=m.double_sided)
            diffuse = sphere = toon_texture = None
            if variant.texture:
                diffuse, self._texture_alpha[i] = self._texture(ctx, m.texture, "diffuse", cache)
            if has_sphere:
                role = "sphere_add" if m.sphere_mode == SphereMode.ADD else "sphere_multiply"
                # A sub-texture is an image read by UV (wrapped, mip-mapped), not a sphere map.
                sub_texture = m.sphere_mode == SphereMode.SUBTEXTURE
                self._uses_sub_uvs |= sub_texture
                sphere, _ = self._texture(ctx, m.sphere, role, cache, image=sub_texture)
            if variant.toon_ramp:
                toon_texture, _ = self._texture(ctx, m.toon, "toon", cache)
            self._calls.append(_DrawCall(i, 3 * m.face_start, 3 * m.face_count, variant,
                                         (diffuse, sphere, toon_texture)))
        self._faces = faces.reshape(-1, 3)
        self._face_material = np.zeros(len(self._faces), np.intp)
        for call in self._calls:
            self._face_material[call.first // 3:(call.first + call.count) // 3] = call.material

    def _texture(self, ctx: moderngl.Context, ref: TextureRef, role: str, cache: dict,
                 image: bool = False):
        """(GL texture, lowest alpha in [0, 1]) for ``ref`` in ``role``, shared between materials.

        A texture that cannot be decoded or uploaded becomes the role's neutral
        1x1 stand-in, with a warning; one larger than this GL allows is scaled
        down to fit, with a warning. Keyed by role, since stand-ins differ by role,
        and by sampling. ``image``: sample like a diffuse texture (a sphere-mode-3
        sub-texture) whatever the role.
        """
        image = image or role == "diffuse"
        key = (role, image, _texture_key(ref))
        if key in cache:
            return cache[key]
        try:
            pixels = _fit(load_texture(ref, role), self.renderer.max_texture_size,
                          ref.path or role, self.warnings)
        except TextureError as error:
            self.warnings.append(f"{error}; drawn without it")
            pixels = load_texture(None, role)
        height, width = pixels.shape[:2]
        texture = ctx.texture((width, height), 4, np.ascontiguousarray(pixels), alignment=1)
        error = ctx.error  # moderngl does not raise when GL refuses the upload
        if error != "GL_NO_ERROR":
            self.warnings.append(f"{ref.path or role}: cannot upload a {width}x{height} "
                                 f"texture ({error}); drawn without it")
            texture.release()
            pixels = load_texture(None, role)
            texture = ctx.texture((1, 1), 4, np.ascontiguousarray(pixels), alignment=1)
        self._keep(texture)
        if image:
            texture.build_mipmaps()  # MMD's samplers wrap and mip-map
            texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        else:
            # Indexed by N.L (toon) or the normal (sphere): clamp, so the ends do not wrap.
            texture.repeat_x = texture.repeat_y = False
            texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        cache[key] = (texture, float(pixels[..., 3].min()) / 255.0)
        return cache[key]

    def _vao(self, variant: ShaderVariant) -> moderngl.VertexArray:
        vao = self._vaos.get(variant)
        if vao is None:
            vao = self._vaos[variant] = self._keep(self.renderer.ctx.vertex_array(
                self.renderer.program(variant),
                [(self._positions, "3f", "in_position"), (self._normals, "3f", "in_normal"),
                 (self._uvs, "2f", "in_uv"), (self._sub_uvs, "2f", "in_sub_uv")],
                index_buffer=self._indices, index_element_size=4,
                skip_errors=True,  # a shader may leave an attribute unused
            ))
        return vao

    def draw(self, posed: PosedModel, camera: Camera, lights: Lights | None = None,
             remember: bool = False) -> np.ndarray:
        """Render one pose of the scene's model through ``camera``.

        ``posed`` may pose the whole model the scene's is a face subset of
        (:meth:`Model.with_faces`): only the scene's faces are drawn.
        ``remember``: keep this frame (the last :data:`KEPT_FRAMES` of them) for
        later draws to start from: a pose that differs from a kept one inside a
        small part of the image (an expression on a head in close-up) copies it
        and redraws only that part, with the same pixels as a whole draw
        (:mod:`mmdrender.gl.redraw`). Multisampled frames are always drawn whole.

        Returns
        -------
        (size, size, 4) uint8: sRGB RGBA with straight alpha, first row = top;
        pixels the character does not cover are exactly (0, 0, 0, 0).
        """
        if self._released:
            raise RenderError("this ModelScene has been released")
        renderer, ctx = self.renderer, self.renderer.ctx
        if posed.model.vertices is not self.model.vertices and \
                posed.model.faces is not self.model.faces:  # a face subset shares the vertices
            raise RenderError("the posed model is not the model this scene was prepared for")
        if camera.size != renderer.size:
            raise RenderError(f"the camera is for {camera.size}-pixel images, the renderer "
                              f"draws {renderer.size}-pixel ones")
        count = len(self.model.vertices)
        positions = _vertex_array(posed.positions, (count, 3), "positions")
        normals = _vertex_array(posed.normals, (count, 3), "normals")
        uvs = _vertex_array(posed.uvs, (count, 2), "uvs")
        depth_range = (0.0, 0.0)
        if count:
            z = positions[:, 2]
            depth_range = (float(z.min()), float(z.max()))
            if not (math.isfinite(depth_range[0]) and math.isfinite(depth_range[1])):
                raise RenderError(f"{self.model.path}: the posed positions are not finite")
        self._positions.write(positions)
        self._normals.write(normals)
        self._uvs.write(uvs)
        self._write_sub_uvs(posed.sub_uvs, count)
        materials = self._write_materials(posed.materials)

        lights = lights if lights is not None else renderer.lights
        to_light = np.array(lights.towards_light, np.float32)
        half = to_light + np.array([0.0, 0.0, 1.0], np.float32)  # the viewer is at +z
        half_length = float(np.linalg.norm(half))
        half = half / half_length if half_length > 1e-6 else np.array([0, 0, 1], np.float32)
        uniforms = {
            "mvp": np.ascontiguousarray(camera.projection(depth_range).T).tobytes(),
            "light_ambient": np.float32(lights.ambient).tobytes(),
            "light_directional": np.float32(lights.directional).tobytes(),
            "light_to": to_light.tobytes(),
            "light_half": half.astype(np.float32).tobytes(),
        }
        inputs = DrawInputs(positions, normals, uvs, self._drawn_sub_uvs(), materials,
                            tuple(uniforms.items()))
        box = self.redrawn_box = self._start_from_kept(inputs, camera)
        try:
            if box is None or box[2] * box[3]:
                self._draw_calls(uniforms, box)
        finally:
            renderer.target.scissor = None
        image = renderer.read()
        error = ctx.error
        if error != "GL_NO_ERROR":
            raise RenderError(f"{self.model.path}: OpenGL reported {error} while drawing")
        if remember:
            self._remember(inputs)
        return image

    def _start_from_kept(self, inputs: DrawInputs, camera: Camera):
        """Copy the kept frame that differs least from ``inputs`` into the target.

        Returns the box left to redraw (x, y, width, height; zero-sized when
        nothing differs), or None: draw the whole frame.
        """
        renderer = self.renderer
        best = None
        for kept, frame in self._kept:
            box = redraw_box(kept, inputs, self._faces, self._face_material, camera,
                             renderer.supersample)
            if box is not None and (best is None or box[2] * box[3] < best[0][2] * best[0][3]):
                best = box, frame
                if not box[2] * box[3]:
                    break  # the very frame: none is nearer
        if best is None:
            return None
        _bind(renderer.target)  # a blit obeys the scissor test: none may be left on
        renderer.ctx.copy_framebuffer(renderer.target, best[1])
        return best[0]

    def _remember(self, inputs: DrawInputs) -> None:
        if self.renderer.samples:
            return  # a multisampled target is drawn whole every time
        if self.redrawn_box == (0, 0, 0, 0):
            return  # the very frame of one kept already
        ctx, target = self.renderer.ctx, self.renderer.target
        if len(self._kept) < KEPT_FRAMES:
            colour = self._keep(ctx.renderbuffer(target.size, components=4))
            frame = self._keep(ctx.framebuffer(color_attachments=[colour]))
        else:
            frame = self._kept.pop(0)[1]  # the oldest's storage
        _bind(target)
        ctx.copy_framebuffer(frame, target)
        self._kept.append((inputs.copy(), frame))

    def _draw_calls(self, uniforms: dict, box) -> None:
        """Draw every visible material into the target, only inside ``box`` when given.

        Whole frames are drawn with the scissor test on too, over the whole target:
        GL's invariance rules then promise the same fragments whatever the box.
        """
        renderer, ctx = self.renderer, self.renderer.ctx
        target = renderer.target
        _bind(target, box or (0, 0, *target.size))
        target.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable_only(moderngl.DEPTH_TEST | moderngl.BLEND)
        ctx.depth_func = "<="
        ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
        ctx.blend_equation = moderngl.FUNC_ADD
        ctx.front_face = "ccw"
        ctx.cull_face = "back"
        culling = False
        prepared: set = set()
        stride = renderer.material_stride
        for call in self._calls:
            i = call.material
            if not self._visible[i]:
                continue
            variant = replace(call.variant, alpha_test=bool(self._alpha_test[i]),
                              specular=bool(self._specular[i]))
            vao = self._vao(variant)
            if variant not in prepared:
                program = vao.program
                for name, data in uniforms.items():
                    if name in program:
                        program[name].write(data)
                prepared.add(variant)
            if variant.two_sided == culling:
                culling = not variant.two_sided
                (ctx.enable if culling else ctx.disable)(moderngl.CULL_FACE)
            for texture, unit in zip(call.textures, (_DIFFUSE_UNIT, _SPHERE_UNIT, _TOON_UNIT),
                                     strict=True):
                if texture is not None:
                    texture.use(unit)
            self._material_buffer.bind_to_uniform_block(
                _MATERIAL_BLOCK, offset=i * stride, size=_MATERIAL_VEC4S * 16)
            vao.render(moderngl.TRIANGLES, vertices=call.count, first=call.first)
        ctx.disable(moderngl.CULL_FACE)

    def _drawn_sub_uvs(self) -> np.ndarray | None:
        """The additional UV 1 in the buffer, where a material reads it."""
        if not self._uses_sub_uvs:
            return None
        return self._rest_sub_uvs if self._sub_uvs_drawn is None else self._sub_uvs_drawn

    def _write_sub_uvs(self, sub_uvs, count: int) -> None:
        """Put the pose's additional UV 1 (None: the model's own) in the buffer, when it changed.

        Only sub-texture materials read it, so a model without one skips the upload.
        """
        if not self._uses_sub_uvs:
            return
        if sub_uvs is None:
            if self._sub_uvs_drawn is not None:
                self._sub_uvs.write(self._rest_sub_uvs)
                self._sub_uvs_drawn = None
            return
        sub_uvs = _vertex_array(sub_uvs, (count, 2), "sub_uvs")
        if self._sub_uvs_drawn is None or not np.array_equal(sub_uvs, self._sub_uvs_drawn):
            self._sub_uvs.write(sub_uvs)
            self._sub_uvs_drawn = sub_uvs.copy()

    def _write_materials(self, state) -> np.ndarray:
        """Upload the per-material uniform block (when it changed); derive how each draws.

        Returns the block, (materials, floats per material)."""
        count = len(self.model.materials)
        stride = self.renderer.material_stride // 4
        block = np.zeros((max(count, 1), stride), np.float32)
        try:
            diffuse = np.asarray(state.diffuse, np.float32).reshape(count, 4)
            specular = np.asarray(state.specular, np.float32).reshape(count, 3)
            power = np.asarray(state.specular_power, np.float32).reshape(count)
            tex_multiply = np.asarray(state.texture_multiply, np.float32).reshape(count, 4)
            tex_add = np.asarray(state.texture_add, np.float32).reshape(count, 4)
            block[:count, 0:4] = diffuse
            block[:count, 4:7] = specular
            block[:count, 7] = power
            block[:count, 8:12] = tex_multiply
            block[:count, 12:16] = tex_add
            block[:count, 16:20] = state.sphere_multiply
            block[:count, 20:24] = state.sphere_add
            block[:count, 24:28] = state.toon_multiply
            block[:count, 28:32] = state.toon_add
        except ValueError as error:
            raise RenderError(f"{self.model.path}: the material state does not fit the model's "
                              f"{count} materials: {error}") from error
        data = block.tobytes()
        if data != self._material_bytes:
            self._material_buffer.write(data)
            self._material_bytes = data

        alpha = diffuse[:, 3]
        with np.errstate(invalid="ignore"):
            self._visible = alpha >= np.float32(ALPHA_VISIBLE)
            # The texture factors leave the texture's alpha alone (see the shader).
            self._alpha_test = ~(alpha * self._texture_alpha >= _NO_TEST_ALPHA)
            self._specular = (power > 0) & (specular > 0).any(axis=1)
        return block

    def release(self) -> None:
        """Free this scene's buffers and textures."""
        for obj in reversed(self._objects):
            obj.release()
        self._objects.clear()
        self._vaos.clear()
        self._released = True

    def __enter__(self) -> ModelScene:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _bind(framebuffer: moderngl.Framebuffer, scissor=None) -> None:
    """Draw into ``framebuffer``, with the scissor test on inside ``scissor`` (else off)."""
    framebuffer.scissor = scissor
    framebuffer.use()


def _found(ref: TextureRef | None) -> bool:
    return ref is not None and ref.found


def _fit(pixels: np.ndarray, largest: int, name, warnings: list[str]) -> np.ndarray:
    """``pixels``, scaled down (keeping the aspect) when a side exceeds ``largest``."""
    height, width = pixels.shape[:2]
    if max(height, width) <= largest:
        return pixels
    scale = largest / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    warnings.append(f"{name}: a {width}x{height} texture is larger than this GL allows "
                    f"({largest} pixels a side); drawn scaled down to {size[0]}x{size[1]}")
    return np.asarray(Image.fromarray(pixels, "RGBA").resize(size, Image.Resampling.LANCZOS))


def _texture_key(ref: TextureRef):
    return ref.path if ref.path is not None else ("shared toon", ref.shared_toon)


def _vertex_array(values, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.shape != shape:
        raise RenderError(f"posed {name} have shape {array.shape}, expected {shape}")
    return array
