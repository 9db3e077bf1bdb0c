"""Trajectories on the exact field: descent paths (``paths``), basins of attraction
(``basins``), streamlines (``streamlines``, stepped by ``integrate``), and running whichever a
job asks for after its tiles (``flows``). Each returns a record from :mod:`gradbatch.records`;
the store writes it."""
