"""`python -m lienthong`, the same as the `lienthong` command."""

from lienthong.cli.main import main

main()
