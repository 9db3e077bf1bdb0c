"""The viewer: reads gradbatch files only (never torch or the engine).

state/loader (no GL): which window at which pyramid level; render: headless PNGs through vispy.
"""
