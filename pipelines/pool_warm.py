"""Imported once by the stage pool's forkserver (``set_forkserver_preload``): loads what the CPU stages load
on first use and freezes it out of the garbage collector, so every worker forked from the forkserver
starts ready and shares those pages copy-on-write instead of loading a copy of its own."""

import gc

from harvester.stages import warm_up

warm_up()
gc.freeze()
