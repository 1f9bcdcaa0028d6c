"""python -m bench NAME [options]: run one benchmark script from this folder."""

import runpy
import sys

if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(
        "usage: python -m bench produce|pipeline|plays|recovery|recommend|query|dashboard|memory|iceberg"
        " [options]"
        "  (--help after the name)"
    )
    sys.exit(0 if len(sys.argv) >= 2 else 2)
name = sys.argv.pop(1)
sys.argv[0] = f"bench/{name}.py"
runpy.run_module(f"bench.{name}", run_name="__main__")
