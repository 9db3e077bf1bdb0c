"""Arrow fields drawn as one point sprite per arrow: GL only draws here.

One vertex per arrow (centre, drawn vector, colour) instead of six line vertices: the vertex
shader maps the arrow's centre and tip to framebuffer pixels, sizes the point sprite to hold
the arrow, and the fragment shader keeps the pixels inside a shaft and a triangular head,
rotated to the arrow's direction. A million arrows are one draw call of a million points.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["ArrowField", "MAX_ARROW_PIXELS"]

MAX_ARROW_PIXELS = 250.0  # sprites are at most 255 px wide on common GL drivers (llvmpipe: 255)

_VERT = """
attribute vec2 a_position;   // the arrow's centre (visual coordinates)
attribute vec2 a_vector;     // the drawn arrow, centre - vector/2 to centre + vector/2
attribute vec4 a_color;
varying vec4 v_color;
varying vec2 v_dir;          // unit direction in framebuffer pixels
varying float v_half;        // half the arrow's length in pixels
varying float v_size;        // the sprite's side in pixels

void main() {
    vec4 c = $visual_to_framebuffer(vec4(a_position, 0.0, 1.0));
    vec4 t = $visual_to_framebuffer(vec4(a_position + 0.5 * a_vector, 0.0, 1.0));
    vec2 d = t.xy / t.w - c.xy / c.w;
    float half_len = min(length(d), $max_half);
    v_half = half_len;
    v_dir = half_len > 0.0 ? normalize(d) : vec2(1.0, 0.0);
    v_color = a_color;
    v_size = half_len < 0.5 ? 1.0 : 2.0 * half_len + 2.0;  // below a pixel: a dot
    gl_PointSize = v_size;
    gl_Position = $framebuffer_to_render(c);
}
"""

_FRAG = """
varying vec4 v_color;
varying vec2 v_dir;
varying float v_half;
varying float v_size;

void main() {
    if (v_half < 0.5) { gl_FragColor = v_color; return; }  // shorter than a pixel: a dot
    vec2 q = (gl_PointCoord - 0.5) * v_size;
    q.y = -q.y;  // gl_PointCoord runs down, framebuffer y up
    float along = dot(q, v_dir);
    float across = abs(v_dir.x * q.y - v_dir.y * q.x);
    float head = max(min(0.35 * 2.0 * v_half, 12.0), 1.5);  // head length, pixels
    float base = v_half - head;                             // where the head starts
    bool shaft = along >= -v_half && along <= base && across <= 0.6;
    bool tip = along > base && along <= v_half && across <= 0.45 * (v_half - along) + 0.5;
    if (!(shaft || tip)) discard;
    gl_FragColor = v_color;
}
"""


def ArrowField(parent: Any = None) -> Any:
    """A vispy scene node drawing arrows; call ``.set_data(centres, vectors, colors)`` with
    (N, 2) centres and drawn vectors in data coordinates and (N, 4) RGBA colours."""
    return _node_type()(parent=parent)


@functools.cache
def _node_type() -> Any:
    from vispy import gloo
    from vispy.scene.visuals import create_visual_node
    from vispy.visuals import Visual

    class _ArrowVisual(Visual):  # type: ignore[misc]
        def __init__(self) -> None:
            Visual.__init__(self, vcode=_VERT, fcode=_FRAG)
            self._draw_mode = "points"
            self._count = 0
            self.shared_program.vert["max_half"] = MAX_ARROW_PIXELS / 2
            self.set_gl_state("translucent", depth_test=False)
            self.set_data(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros((0, 4), np.float32))

        def set_data(self, centres: np.ndarray, vectors: np.ndarray, colors: np.ndarray) -> None:
            self._count = len(centres)
            self.centres = centres  # where the arrows stand (N, 2): kept for tests and read-outs
            if self._count == 0:  # GL refuses empty buffers: keep one invisible arrow
                centres, vectors, colors = (
                    np.zeros((1, 2), np.float32),
                    np.zeros((1, 2), np.float32),
                    np.zeros((1, 4), np.float32),
                )
            self.shared_program["a_position"] = gloo.VertexBuffer(np.ascontiguousarray(centres, np.float32))
            self.shared_program["a_vector"] = gloo.VertexBuffer(np.ascontiguousarray(vectors, np.float32))
            self.shared_program["a_color"] = gloo.VertexBuffer(np.ascontiguousarray(colors, np.float32))
            self.update()

        @property
        def count(self) -> int:
            return self._count

        def _prepare_transforms(self, view: Any) -> None:
            view.view_program.vert["visual_to_framebuffer"] = view.get_transform("visual", "framebuffer")
            view.view_program.vert["framebuffer_to_render"] = view.get_transform("framebuffer", "render")

        def _prepare_draw(self, view: Any) -> bool:
            return self._count > 0

        def _compute_bounds(self, axis: int, view: Any) -> None:
            return None

    return create_visual_node(_ArrowVisual)
