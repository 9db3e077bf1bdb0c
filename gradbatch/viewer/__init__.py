"""The viewer: reads gradbatch files only (never torch or the engine).

state/loader (no GL): which window at which pyramid level; render: headless PNGs through vispy.
"""

__all__ = ["KEYS"]

KEYS = {  # the window's keys: shown by `gradbatch view --help` and in the README
    "i a s p b o": "toggle image, arrows, streamlines, paths, basins, contours",
    "space": "play or pause the descent paths, step by step",
    "[ ]": "paths a fiftieth of their steps back or forward",
    ", .": "a 3D job: move the slice plane one grid step down or up",
    "j": "next job in the file",
    "d": "flip the arrows (ascent or descent)",
    "r": "reset the view",
    "c": "screenshot to FILE-N.png",
}
