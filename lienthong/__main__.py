"""`python -m lienthong`, the same as the `lienthong` command."""

from lienthong.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    main()
