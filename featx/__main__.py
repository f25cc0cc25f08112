"""``python -m featx``: the same as the ``featx`` console script."""

from featx.cli import main

main(prog_name="featx")
