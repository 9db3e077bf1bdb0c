"""Dense layers drawn by GL off screen, for picture files: a million arrows are one point-sprite
draw (:mod:`gradbatch.viewer.arrows`) read back as an RGBA raster that matplotlib places inside
its axes. GL only draws here."""

from __future__ import annotations

import numpy as np

__all__ = ["draw_arrows"]


def draw_arrows(
    centres: np.ndarray,
    vectors: np.ndarray,
    colors: np.ndarray,
    window: tuple[float, float, float, float],
    size: tuple[int, int],
) -> np.ndarray:
    """RGBA (height, width, 4) uint8 of arrows centred at ``centres`` along ``vectors`` (data
    units) over ``window`` (x0, x1, y0, y1) on a transparent ``size`` (width, height) canvas."""
    from .arrows import ArrowField
    from .render import vispy_scene

    scene = vispy_scene("egl")
    canvas = scene.SceneCanvas(size=size, show=False, bgcolor=(0, 0, 0, 0))
    try:
        view = canvas.central_widget.add_view()
        x0, x1, y0, y1 = window
        view.camera = scene.PanZoomCamera(rect=(x0, y0, x1 - x0, y1 - y0))
        arrows = ArrowField(parent=view.scene)
        # vispy's 'translucent' keeps the target's alpha (0 here): over a transparent canvas the
        # arrows must write theirs, or matplotlib would see nothing
        arrows.set_gl_state(
            blend=True, blend_func=("src_alpha", "one_minus_src_alpha", "one", "one_minus_src_alpha"), depth_test=False
        )
        arrows.set_data(centres, vectors, colors)
        return np.asarray(canvas.render(alpha=True))
    finally:
        canvas.close()
