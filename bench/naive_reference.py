#!/usr/bin/env python3
"""The naive reference: what a user would write in an afternoon with the standard library
(tarfile + json), producing the same rows as mlab-etl (same id, a, raw; date; a small `parser`
record) as JSONL. No validation, no ledger, no rejects table. bench/verify-naive.mjs checks that
its rows equal mlab-etl's on the real files in testdata/ and on the synthetic archives.

Handles the switch datatype (DISCOv2 `*switch.jsonl[.gz]` entries only; DISCOv1 entries are
skipped) and ndt7 (one JSON document per `.json[.gz]` entry). The datatype and date come from the
archive's path (`.../<experiment>/<datatype>/YYYY/MM/DD/<name>.tgz`), as mlab-etl reads them.

Usage: python3 bench/naive_reference.py ARCHIVE.tgz OUT.jsonl
Prints {"rows": N, "entries": N} on stdout.
"""
import datetime
import gzip
import json
import os
import re
import sys
import tarfile

MAX_SAFE = 2**53 - 1


def exact(v):
    """BigQuery's JSON rule for INT64: integers outside +/-2^53 as decimal strings."""
    if isinstance(v, int) and not isinstance(v, bool) and (v > MAX_SAFE or v < -MAX_SAFE):
        return str(v)
    return v


# ---------------------------------------------------------------- switch

MACHINE = re.compile(r"mlab[0-9]")
SITE = re.compile(r"s1[-.]([a-z]{3}[0-9t]{2})")
SUMMARY = {}
for k in ("octets", "unicast", "broadcast", "errors", "discards"):
    for s in ("uplink", "local"):
        for d in ("rx", "tx"):
            SUMMARY[f"switch.{k}.{s}.{d}"] = "Switch" + k.capitalize() + s.capitalize() + d.capitalize()


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def switch_rows(lines, date):
    zero_local_octets = "2020-09-09" < date < "2022-01-19"
    rows = {}
    for line in lines:
        if not line.strip():
            continue
        obj = json.loads(line)
        hostname = obj.get("hostname") or ""
        experiment = obj.get("experiment") or ""
        metric = obj.get("metric") or ""
        machine = MACHINE.search(hostname)
        site = SITE.search(experiment)
        if not machine or not site:
            continue
        machine, site = machine.group(0), site.group(1)
        field = SUMMARY.get(metric)
        zeroed = zero_local_octets and metric in ("switch.octets.local.tx", "switch.octets.local.rx")
        for s in obj["sample"]:
            ts, value = s.get("timestamp"), s.get("value")
            if not is_int(ts) or not (is_int(value) or isinstance(value, float)):
                continue
            sample = {"timestamp": ts, "value": exact(value)}
            for key in ("collectstart", "collectend", "counter"):
                if is_int(s.get(key)):
                    sample[key] = exact(s[key])
            row_id = f"{machine}-{site}-{ts}"
            row = rows.get(row_id)
            if row is None:
                when = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
                row = rows[row_id] = {
                    "id": row_id,
                    "a": {"Machine": machine, "Site": site, "CollectionTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
                    "raw": {"Metrics": []},
                    "_ts": ts,
                }
            row["raw"]["Metrics"].append(
                {"metric": metric, "hostname": hostname, "experiment": experiment, "sample": [sample]}
            )
            if field:
                row["a"][field] = 0 if zeroed else exact(int(value))
                row["a"][field + "Counter"] = 0 if zeroed else exact(s.get("counter", 0) if is_int(s.get("counter")) else 0)
    for row in sorted(rows.values(), key=lambda r: (r["_ts"], r["id"])):
        del row["_ts"]
        yield row


# ---------------------------------------------------------------- ndt7

FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(Z|[+-]\d{2}:\d{2})$")
TIMES = ("StartTime", "EndTime")


def microsecond_time(v):
    m = FRACTION.match(v)
    if not m or len(m.group(2)) <= 6:
        return v
    return f"{m.group(1)}.{m.group(2)[:6]}{m.group(3)}"


def clean_direction(d):
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        if k in TIMES and isinstance(v, str):
            out[k] = microsecond_time(v)
        elif k in ("ServerMeasurements", "ClientMeasurements") and isinstance(v, list):
            out[k] = [{kk: vv for kk, vv in m.items() if kk != "ConnectionInfo"} if isinstance(m, dict) else m for m in v]
        else:
            out[k] = v
    return out


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def ndt7_row(doc):
    direction = "Download" if isinstance(doc.get("Download"), dict) else "Upload"
    d = doc[direction]
    row_id = d["UUID"].replace("_unsafe", "")
    a = {"UUID": row_id}
    if isinstance(d.get("StartTime"), str):
        a["TestTime"] = microsecond_time(d["StartTime"])
    a.update({"CongestionControl": "bbr", "MeanThroughputMbps": 0, "MinRTT": 0, "LossRate": 0})
    measurements = d.get("ServerMeasurements") or []
    tcp = measurements[-1].get("TCPInfo") if measurements and isinstance(measurements[-1], dict) else None
    if isinstance(tcp, dict):
        elapsed = num(tcp.get("ElapsedTime"))
        sent_or_received = num(tcp.get("BytesAcked" if direction == "Download" else "BytesReceived"))
        a["MeanThroughputMbps"] = 8 * sent_or_received / elapsed if elapsed > 0 else 0
        a["MinRTT"] = num(tcp.get("MinRTT")) / 1000
        sent = num(tcp.get("BytesSent"))
        a["LossRate"] = num(tcp.get("BytesRetrans")) / sent if direction == "Download" and sent > 0 else 0
    raw = {}
    for k, v in doc.items():
        if v is None:
            continue
        if k in ("Download", "Upload"):
            raw[k] = clean_direction(v) if isinstance(v, dict) else v
        elif k in TIMES and isinstance(v, str):
            raw[k] = microsecond_time(v)
        else:
            raw[k] = v
    return {"id": row_id, "a": a, "raw": raw}


# ---------------------------------------------------------------- main


def main():
    archive, out_path = sys.argv[1], sys.argv[2]
    m = re.search(r"([a-z-]+)/([a-z0-9-]+)/(\d{4})/(\d{2})/(\d{2})/[^/]+$", archive)
    datatype, date = m.group(2), f"{m.group(3)}-{m.group(4)}-{m.group(5)}"
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    rows = entries = 0
    with tarfile.open(archive) as tar, open(out_path, "w") as out:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            f = tar.extractfile(member)
            if name.endswith(".gz"):
                f = gzip.GzipFile(fileobj=f)
            if datatype == "switch":
                if not name.endswith(("switch.jsonl", "switch.jsonl.gz")):
                    continue
                produced = switch_rows(f, date)
            elif datatype == "ndt7":
                try:
                    produced = [ndt7_row(json.loads(f.read()))]
                except (ValueError, EOFError, OSError, KeyError) as err:
                    print(f"{name}: {err}", file=sys.stderr)
                    continue
            else:
                sys.exit(f"naive_reference.py: no parser for datatype {datatype}")
            entries += 1
            parser = {"Version": "naive", "Time": now, "ArchiveURL": "file://" + os.path.abspath(archive), "Filename": name}
            for row in produced:
                out.write(json.dumps({"id": row["id"], "date": date, "parser": parser, "a": row["a"], "raw": row["raw"]}))
                out.write("\n")
                rows += 1
    print(json.dumps({"rows": rows, "entries": entries}))


if __name__ == "__main__":
    main()
