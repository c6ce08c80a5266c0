#!/usr/bin/env python3
"""bench/report.py RESULTS JSON_OUT - the report of one bench/run.sh.

Reads the figures bench/run.sh collected (one line each: "KIND ROW
key=value...", see run.sh's record()), prints the tables, canaryd's ratios
to its peers and one verdict line per target of issue 3, and writes every
figure to JSON_OUT (bench/last-run.json). Exits 0 even when targets are
missed (the verdicts say so); 2 on unreadable input.
"""

import json
import sys
import time

MIB = 1024.0  # kB per MiB; /proc/PID/status counts in kB (KiB)

# issue 3's targets; memory limits are taken as MiB of VmRSS
TARGET_RPS_LOW = 1.25
TARGET_RPS_HIGH = 1.0
TARGET_IDLE_START_MIB = 8
TARGET_IDLE_CONNS_MIB = 64
TARGET_WORKERS = 1.8


def number(v):
    """v as an int or float when it is one, else the string itself."""
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def parse(path):
    """Returns (meta, text, load, idle, workers) from the results file."""
    meta, text, load, idle, workers = {}, {}, {}, {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("text "):
                _, key, *rest = line.split(" ", 2)
                text[key] = rest[0] if rest else ""
                continue
            words = line.split()
            fields = {}
            for w in words:
                if "=" in w:
                    k, _, v = w.partition("=")
                    fields[k] = number(v)
            if words[0] == "meta":
                meta = fields
            elif words[0] == "load" and len(words) >= 3:
                load.setdefault(int(words[1]), {}).setdefault(words[2], []).append(fields)
            elif words[0] == "idle" and len(words) >= 3:
                fields.setdefault("connections", int(words[1]))
                idle[words[2]] = fields
            elif words[0] == "workers" and len(words) >= 3:
                workers[int(words[1])] = fields
    return meta, text, load, idle, workers


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


MEDIAN_KEYS = ("rps", "p50", "p99", "p999", "cpu_us", "canary_share")


def summarize(rounds):
    """One row from a proxy's rounds: the median of each figure over the
    rounds that produced figures, the highest peak RSS, the sums of errors
    and requests; "rounds" keeps every round as measured."""
    good = [r for r in rounds if ok(r)]
    if not good:
        return dict(rounds[0], rounds=rounds) if rounds else {"status": "failed"}
    row = {}
    for k in MEDIAN_KEYS:
        vals = [r[k] for r in good if isinstance(r.get(k), (int, float))]
        if vals:
            row[k] = median(vals)
    for k in ("errors", "non2xx", "requests"):
        row[k] = sum(r.get(k, 0) for r in good)
    hwm = [r["hwm_kb"] for r in good if isinstance(r.get("hwm_kb"), int)]
    if hwm:
        row["hwm_kb"] = max(hwm)
    row["rounds_ok"] = len(good)
    row["rounds"] = rounds
    return row


def round_ratios(raw, key):
    """canaryd / haproxy of figure key, round by round (rounds are
    interleaved, so each pair ran under the same conditions)."""
    c = {r.get("round"): r for r in raw.get("canaryd", []) if ok(r)}
    h = {r.get("round"): r for r in raw.get("haproxy", []) if ok(r)}
    out = []
    for k in sorted(set(c) & set(h), key=str):
        if h[k].get(key):
            out.append(c[k][key] / h[k][key])
    return out


def ok(row):
    return row is not None and "status" not in row and "rps" in row


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f} ms"


def mib(kb):
    return "-" if not isinstance(kb, (int, float)) else f"{kb / MIB:.1f} MiB"


def load_table(conns, rows):
    out = [f"| {'proxy':<8} | {'requests/s':>12} | {'p50':>9} | {'p99':>9} | {'p99.9':>9} "
           f"| {'CPU/request':>11} | {'peak RSS':>10} | {'errors':>8} |",
           "|----------|--------------|-----------|-----------|-----------|-------------|------------|----------|"]
    for name in ("direct", "haproxy", "nginx", "canaryd"):
        r = rows.get(name)
        if r is None:
            continue
        if not ok(r):
            out.append(f"| {name:<8} | {r.get('status', 'failed'):>12} | {'-':>9} | {'-':>9} | {'-':>9} "
                       f"| {'-':>11} | {'-':>10} | {'-':>8} |")
            continue
        errors = r.get("errors", 0) + r.get("non2xx", 0)
        cpu = f"{r['cpu_us']:.1f} us" if isinstance(r.get("cpu_us"), (int, float)) else "-"
        out.append(f"| {name:<8} | {r['rps']:>12.0f} | {ms(r.get('p50')):>9} | {ms(r.get('p99')):>9} "
                   f"| {ms(r.get('p999')):>9} | {cpu:>11} | {mib(r.get('hwm_kb')):>10} | {errors:>8} |")
    return out


def ratios(rows):
    """canaryd's requests/s and p99 ratios to each peer, or None per peer."""
    res = {}
    c = rows.get("canaryd")
    for peer in ("haproxy", "nginx"):
        p = rows.get(peer)
        if ok(c) and ok(p) and p["rps"] > 0 and p.get("p99", 0) > 0:
            res[peer] = {"rps": c["rps"] / p["rps"], "p99": c["p99"] / p["p99"]}
            if c.get("cpu_us") and p.get("cpu_us"):
                res[peer]["cpu_us"] = c["cpu_us"] / p["cpu_us"]
        else:
            res[peer] = None
    return res


def verdict(good):
    return "MET" if good else "MISSED"


def main():
    if len(sys.argv) != 3:
        print("usage: report.py RESULTS JSON_OUT", file=sys.stderr)
        return 2
    try:
        meta, text, load, idle, workers = parse(sys.argv[1])
    except (OSError, ValueError, IndexError) as e:
        print(f"bench: cannot read results '{sys.argv[1]}': {e}", file=sys.stderr)
        return 2

    low = meta.get("conns", 50)
    high = meta.get("high_conns", 1000)
    nidle = meta.get("idle_conns", 10000)
    ncpu = meta.get("ncpu", 0)
    targets = []
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": ncpu, "kernel": text.get("kernel", ""),
                    "cpu": text.get("cpu_model", "")},
        "versions": {"canaryd": text.get("canaryd_binary", ""),
                     "haproxy": text.get("haproxy_version", ""),
                     "nginx": text.get("nginx_version", ""),
                     "wrk": text.get("wrk_version", "")},
        "settings": dict(meta, phases=text.get("phases", "").split()),
        "units": {"rps": "requests/s", "p50/p99/p999": "microseconds",
                  "cpu_us": "CPU time (user + system) of the proxy per request, microseconds",
                  "*_kb": "KiB from /proc/PID/status (VmRSS, VmHWM)",
                  "nginx memory": "its worker process; master_* is the master"},
        "load": {}, "ratios": {}, "idle": {}, "workers": {}, "targets": targets,
    }

    print()
    print(f"canaryd benchmark: {meta.get('secs', '?')}s per run, 90/10 split over two nginx upstreams, "
          "one worker/thread per proxy")
    print(f"(wrk on core {meta.get('wrk_cpu', '?')}, proxy on core {meta.get('proxy_cpu', '?')}, "
          f"upstreams {meta.get('upstream_cpus', '?')}; {ncpu} cores, {text.get('cpu_model', '?')}; "
          f"kernel {text.get('kernel', '?')})")

    busy = text.get("loadavg_start", "").split()
    if busy and number(busy[0]) != busy[0] and float(busy[0]) >= 0.5:
        print(f"warning: the machine was busy before the run (load average {' '.join(busy)}): "
              "other processes share the cores, the figures are not reliable")
        report["warning"] = f"machine busy before the run: load average {' '.join(busy)}"
    report["machine"]["loadavg_start"] = text.get("loadavg_start", "")
    report["machine"]["loadavg_end"] = text.get("loadavg_end", "")

    raw_load = load
    load = {conns: {name: summarize(rounds) for name, rounds in rows.items()}
            for conns, rows in raw_load.items()}
    nrounds = meta.get("rounds", 1)
    for conns in sorted(load):
        rows = load[conns]
        print()
        print(f"### {conns} keep-alive connections"
              + (f" (median of {nrounds} interleaved rounds)" if nrounds > 1 else ""))
        print()
        print("\n".join(load_table(conns, rows)))
        print()
        rs = ratios(rows)
        for peer, r in rs.items():
            if r is None:
                print(f"canaryd / {peer:<7}: no figures")
            else:
                cpu = f", CPU/request {r['cpu_us']:.2f}x" if "cpu_us" in r else ""
                print(f"canaryd / {peer:<7}: requests/s {r['rps']:.2f}x, p99 {r['p99']:.2f}x{cpu}")
        per = {k: round_ratios(raw_load[conns], k) for k in ("rps", "p99")}
        if len(per["rps"]) > 1:
            print("canaryd / haproxy round by round: requests/s "
                  + " ".join(f"{x:.2f}x" for x in per["rps"]) + ", p99 "
                  + " ".join(f"{x:.2f}x" for x in per["p99"]))
            rs["haproxy_rounds"] = {k: [round(x, 3) for x in v] for k, v in per.items()}
        share = rows.get("canaryd", {}).get("canary_share")
        if share is not None:
            print(f"canaryd sent {share}% of its requests to the canary")
        report["load"][str(conns)] = rows
        report["ratios"][str(conns)] = rs

    if idle:
        print()
        print(f"### Idle memory: after start-up, then with {nidle} idle keep-alive connections")
        print()
        print(f"| {'proxy':<8} | {'RSS at start':>12} | {'RSS idle conns':>14} | {'per conn':>9} "
              f"| {'anon at start':>13} | {'anon idle':>10} | {'held / asked':>13} | {'closed by proxy':>15} |")
        print("|----------|--------------|----------------|-----------|---------------|------------|"
              "---------------|-----------------|")
        for name in ("haproxy", "nginx", "canaryd"):
            r = idle.get(name)
            if r is None:
                continue
            start, conn_kb = r.get("start_kb"), r.get("idle_kb")
            per = "-"
            if isinstance(start, int) and isinstance(conn_kb, int) and r.get("ok"):
                per = f"{(conn_kb - start) / r['ok']:.2f} KiB"
                r["per_conn_kb"] = round((conn_kb - start) / r["ok"], 3)
            held = f"{r.get('ok', '-')} / {r.get('requested', r.get('connections', '-'))}"
            shown = r["status"] if "status" in r else mib(conn_kb)
            print(f"| {name:<8} | {mib(start):>12} | {shown:>14} "
                  f"| {per:>9} | {mib(r.get('start_anon_kb')):>13} | {mib(r.get('idle_anon_kb')):>10} "
                  f"| {held:>13} | {r.get('closed_by_peer', '-'):>15} |")
        n = idle.get("nginx")
        if n and "master_start_kb" in n:
            print(f"(nginx: its worker's RSS; the master adds {mib(n.get('master_start_kb'))} at start, "
                  f"{mib(n.get('master_idle_kb'))} with the connections)")
        print("(anon: RssAnon, the process's own memory; the rest of VmRSS is file-backed, mostly shared libraries)")
        report["idle"] = dict(idle, connections=nidle)

    if workers:
        print()
        print(f"### canaryd workers: 1 vs 2 ({low} connections)")
        print()
        print(f"| {'workers':<7} | {'cores':>5} | {'requests/s':>12} | {'p50':>9} | {'p99':>9} | {'threads':>7} | {'listeners':>9} |")
        print("|---------|-------|--------------|-----------|-----------|---------|-----------|")
        for w in (1, 2):
            r = workers.get(w)
            if r is None:
                continue
            if r.get("status") == "unsupported":
                print(f"| {w:<7} | {'':>5} | n/a (workers not supported by this build: {r.get('reason', '?')})")
            elif not ok(r):
                print(f"| {w:<7} | {'':>5} | {r.get('status', 'failed'):>12} |")
            else:
                print(f"| {w:<7} | {str(r.get('cpus', '')):>5} | {r['rps']:>12.0f} | {ms(r.get('p50')):>9} "
                      f"| {ms(r.get('p99')):>9} | {r.get('threads', '-'):>7} | {r.get('listeners', '-'):>9} |")
        shared = text.get("workers2_shared", "")
        wr = None
        if ok(workers.get(1)) and ok(workers.get(2)):
            wr = workers[2]["rps"] / workers[1]["rps"]
            print()
            print(f"workers 2 / workers 1: requests/s {wr:.2f}x")
        if shared:
            print(f"note: {ncpu} cores; 2-worker canaryd on cores {meta.get('workers2_cpus', '?')}: {shared}"
                  + ("; the scaling figure is not meaningful" if "wrk" in shared else ""))
        report["workers"] = {str(k): v for k, v in workers.items()}
        report["workers"]["ratio"] = wr
        report["workers"]["cores_shared"] = shared

    # ---- verdicts -----------------------------------------------------------
    def target(name, value, shown, good, note=""):
        v = "n/a" if good is None else verdict(good)
        targets.append({"target": name, "value": value, "verdict": v, "note": note})
        line = f"target {name}: {shown}" if shown.startswith("n/a") else f"target {name}: {shown} {v}"
        if note:
            line += f" ({note})"
        return line

    lines = []
    r = ratios(load.get(low, {})) if low in load else {"haproxy": None}
    hr = r.get("haproxy")
    if low in load:
        lines.append(target(f"requests/s >= {TARGET_RPS_LOW}x haproxy @{low}",
                            hr and round(hr["rps"], 3), f"{hr['rps']:.2f}x" if hr else "no figures",
                            hr["rps"] >= TARGET_RPS_LOW if hr else None))
        lines.append(target(f"p99 <= haproxy's @{low}", hr and round(hr["p99"], 3),
                            f"{hr['p99']:.2f}x" if hr else "no figures",
                            hr["p99"] <= 1.0 if hr else None))
    if high in load and high != low:
        hh = ratios(load[high]).get("haproxy")
        lines.append(target(f"requests/s >= {TARGET_RPS_HIGH}x haproxy @{high}",
                            hh and round(hh["rps"], 3), f"{hh['rps']:.2f}x" if hh else "no figures",
                            hh["rps"] >= TARGET_RPS_HIGH if hh else None))
    c = idle.get("canaryd")
    if c is not None:
        s = c.get("start_kb")
        lines.append(target(f"idle RSS <= {TARGET_IDLE_START_MIB} MiB",
                            s, mib(s), s / MIB <= TARGET_IDLE_START_MIB if isinstance(s, int) else None))
        i = c.get("idle_kb")
        held_all = c.get("ok") == c.get("requested") and not c.get("closed_by_peer")
        note = "" if held_all else f"only {c.get('ok', 0)} of {c.get('requested', nidle)} connections answered and held"
        good = None
        if isinstance(i, int):
            good = i / MIB <= TARGET_IDLE_CONNS_MIB and held_all
        lines.append(target(f"RSS with {nidle} idle connections <= {TARGET_IDLE_CONNS_MIB} MiB",
                            i, mib(i), good, note))
    if workers:
        wr = report["workers"].get("ratio")
        unsupported = any(v.get("status") == "unsupported" for v in workers.values())
        shared = text.get("workers2_shared", "")
        if unsupported:
            lines.append(target(f"workers 2 >= {TARGET_WORKERS}x workers 1", None,
                                "n/a (workers not supported by this build)", None))
        elif wr is None:
            lines.append(target(f"workers 2 >= {TARGET_WORKERS}x workers 1", None, "no figures", None))
        elif "wrk" in shared:
            targets.append({"target": f"workers 2 >= {TARGET_WORKERS}x workers 1", "value": round(wr, 3),
                            "verdict": "not meaningful", "note": shared})
            lines.append(f"target workers 2 >= {TARGET_WORKERS}x workers 1: {wr:.2f}x NOT MEANINGFUL ({shared})")
        else:
            lines.append(target(f"workers 2 >= {TARGET_WORKERS}x workers 1", round(wr, 3), f"{wr:.2f}x",
                                wr >= TARGET_WORKERS, shared))
    if lines:
        print()
        print("### Targets (issue 3)")
        print()
        for line in lines:
            print(line)

    try:
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, sort_keys=False)
            f.write("\n")
        print()
        print(f"figures written to {sys.argv[2]}")
    except OSError as e:
        print(f"bench: cannot write '{sys.argv[2]}': {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
