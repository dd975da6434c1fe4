#!/usr/bin/env python3
"""Writes a minimal ATT&CK STIX bundle from a misp-galaxy mitre-attack-pattern cluster, for pySigma.

Usage: attack-stix.py CLUSTERS_DIR OUT.json

pySigma (behind `sigma analyze attack`) downloads MITRE's enterprise-attack.json at run time; CI has no
internet, so it is given the same techniques and tactics sigma-galaxy reads: every current Enterprise
technique of the cluster as an `attack-pattern` with its `mitre-attack` kill chain phases.
"""

import json
import sys


def main():
    clusters, out = sys.argv[1:]
    with open(f"{clusters}/mitre-attack-pattern.json", encoding="utf-8") as f:
        cluster = json.load(f)
    objects = [
        {
            "type": "x-mitre-collection",
            "id": "x-mitre-collection--00000000-0000-0000-0000-000000000000",
            "x_mitre_version": str(cluster.get("version", "unknown")),
        }
    ]
    for v in cluster["values"]:
        meta = v.get("meta", {})
        phases = [k.split(":", 1)[1] for k in meta.get("kill_chain", []) if k.startswith("attack-")]
        if v.get("revoked") or not phases or "external_id" not in meta:
            continue
        objects.append(
            {
                "type": "attack-pattern",
                "id": f"attack-pattern--{v['uuid']}",
                "name": v["value"].rsplit(" - ", 1)[0],
                "external_references": [{"source_name": "mitre-attack", "external_id": meta["external_id"]}],
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": p} for p in dict.fromkeys(phases)
                ],
            }
        )
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"type": "bundle", "id": "bundle--00000000-0000-0000-0000-000000000000", "objects": objects}, f)


if __name__ == "__main__":
    main()
