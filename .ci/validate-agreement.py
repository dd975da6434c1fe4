#!/usr/bin/env python3
"""`sigma-galaxy validate` must agree with MISP's validator (shared/tools/validate_galaxy.py).

Usage: validate-agreement.py SIGMA_GALAXY_BINARY SHARED_DIR GOOD_OUT_DIR

Takes a good output pair, breaks it in one way at a time, writes each broken pair in misp-galaxy
formatting (unless the break is the formatting), and checks that both tools give the same verdict.
"""
import copy
import json
import os
import subprocess
import sys
import tempfile


def fmt(obj):
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def mutations(c, g):
    v0 = lambda c: c["values"][0]
    def m(name, fn, on="cluster", raw=None):
        return name, fn, on, raw
    return [
        m("unchanged", lambda o: None),
        m("duplicate value ignoring case", lambda o: o["values"].append(dict(copy.deepcopy(v0(o)), uuid="00000000-0000-4000-8000-00000000abcd", value=v0(o)["value"].upper()))),
        m("duplicate uuid", lambda o: o["values"].append(dict(copy.deepcopy(v0(o)), value="Another title"))),
        m("uuid does not parse", lambda o: v0(o).update(uuid="No established id")),
        m("uuid upper case", lambda o: v0(o).update(uuid=v0(o)["uuid"].upper())),
        m("meta integer", lambda o: v0(o)["meta"].update(level=3)),
        m("meta list with empty string", lambda o: v0(o)["meta"].update(tags=["a", ""])),
        m("quote in value", lambda o: v0(o).update(value='A "quoted" title')),
        m("tag too long", lambda o: v0(o).update(value="x" * 240)),
        m("4-byte character", lambda o: v0(o).update(description="emoji \U0001F600")),
        m("version too large", lambda o: o.update(version=2**31)),
        m("version not an integer", lambda o: o.update(version="1")),
        m("missing authors", lambda o: o.pop("authors")),
        m("unknown cluster key", lambda o: o.update(colour="red")),
        m("unknown value key", lambda o: v0(o).update(colour="red")),
        m("value without value", lambda o: v0(o).pop("value")),
        m("related without type", lambda o: v0(o).update(related=[{"dest-uuid": "00000000-0000-4000-8000-000000000001"}])),
        m("related bad dest-uuid", lambda o: v0(o).update(related=[{"dest-uuid": "nope", "type": "related-to"}])),
        m("no values", lambda o: o.update(values=[])),
        m("galaxy type differs", lambda o: o.update(type="other"), on="galaxy"),
        m("galaxy bad uuid", lambda o: o.update(uuid="x"), on="galaxy"),
        m("galaxy unknown key", lambda o: o.update(category="rules"), on="galaxy"),
        m("galaxy missing version", lambda o: o.pop("version"), on="galaxy"),
        m("compact formatting", lambda o: None, raw=lambda o: json.dumps(o) + "\n"),
        m("ascii escapes", lambda o: v0(o).update(description="café"), raw=lambda o: json.dumps(o, indent=2, sort_keys=True) + "\n"),
        m("no final newline", lambda o: None, raw=lambda o: fmt(o)[:-1]),
    ]


def main():
    binary, shared, good = sys.argv[1:4]
    c = json.load(open(os.path.join(good, "clusters", "sigma-rules.json"), encoding="utf-8"))
    g = json.load(open(os.path.join(good, "galaxies", "sigma-rules.json"), encoding="utf-8"))
    disagreements = 0
    for name, fn, on, raw in mutations(c, g):
        cc, gg = copy.deepcopy(c), copy.deepcopy(g)
        fn(cc if on == "cluster" else gg)
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "clusters"))
            os.makedirs(os.path.join(d, "galaxies"))
            cp = os.path.join(d, "clusters", "sigma-rules.json")
            gp = os.path.join(d, "galaxies", "sigma-rules.json")
            with open(cp, "w", encoding="utf-8") as f:
                f.write(raw(cc) if raw and on == "cluster" else fmt(cc))
            with open(gp, "w", encoding="utf-8") as f:
                f.write(fmt(gg))
            py = subprocess.run([sys.executable, os.path.join(shared, "tools", "validate_galaxy.py"), cp, gp],
                                capture_output=True, text=True)
            rs = subprocess.run([binary, "validate", cp, gp], capture_output=True, text=True)
        py_ok, rs_ok = py.returncode == 0, rs.returncode == 0
        verdict = "valid" if py_ok else "invalid"
        mark = "ok " if py_ok == rs_ok else "DISAGREE"
        if py_ok != rs_ok:
            disagreements += 1
        print(f"{mark} {name}: MISP's validator says {verdict}, sigma-galaxy says {'valid' if rs_ok else 'invalid'}")
        if py_ok != rs_ok:
            print("   python:", py.stdout.strip().splitlines()[:3])
            print("   rust:  ", rs.stdout.strip().splitlines()[:3])
    print(f"{disagreements} disagreement(s)")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
