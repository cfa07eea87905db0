#!/usr/bin/python3
"""Proves the layering: every archive (given lowest layer first) may use
symbols defined in itself or in a lower layer, never in a higher one.

    spec/layers.py build/liblib.a build/libstore.a ...

Prints each upward reference as "LAYER/obj.o -> HIGHER/obj.o: symbol" and
exits 1 if there is one; otherwise prints "layers: ok (N archives)".
"""
import subprocess
import sys


def symbols(archive):
    """(defined: {sym: obj}, undefined: [(obj, sym)]) for one archive."""
    out = subprocess.run(["nm", "-A", archive], capture_output=True, text=True, check=True).stdout
    defined, undefined = {}, []
    for line in out.splitlines():
        # "archive.a:obj.o:VALUE TYPE SYMBOL", VALUE blank for undefined ones
        _, obj, rest = line.split(":", 2)
        parts = rest.split()
        if len(parts) == 3 and parts[1] in "TDBRVWC":
            defined[parts[2]] = obj
        elif len(parts) == 2 and parts[0] == "U":
            undefined.append((obj, parts[1]))
    return defined, undefined


def main(archives):
    tables = [symbols(a) for a in archives]
    bad = 0
    for i, (_, undefined) in enumerate(tables):
        for obj, sym in undefined:
            for j in range(i + 1, len(archives)):
                if sym in tables[j][0]:
                    print(f"{archives[i]}:{obj} -> {archives[j]}:{tables[j][0][sym]}: {sym}")
                    bad += 1
    if bad:
        print(f"layers: {bad} upward reference(s)")
        return 1
    print(f"layers: ok ({len(archives)} archives)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
