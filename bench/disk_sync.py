#!/usr/bin/python3
"""disk_sync.py - how long fdatasync takes on this disk under the spool's
write pattern, without ringmta: one thread appends 10 KB records at a
paced rate, another calls fdatasync whenever a batch of bytes has been
written since its last sync, as group commit does. Prints the median and
90th percentile sync time, for writes to the synced file ("same") and for
writes moved to a second file while a sync runs ("two").

Usage: bench/disk_sync.py [--dir /var/tmp] [--rate-mb 300] [--batch-mb 4]
                          [--seconds 5] [--reps 3]
"""
import argparse
import os
import threading
import time

REC = 10240


def run(directory, mode, rate, batch, seconds):
    paths = [os.path.join(directory, "disk_sync.%d.%d" % (os.getpid(), i)) for i in range(2)]
    fds = [os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600) for p in paths]
    st = {"cur": 0, "pending": 0, "stop": False}
    cv = threading.Condition()
    lat = []
    buf = b"x" * REC

    def writer():
        n, t0 = 0, time.perf_counter()
        while not st["stop"]:
            with cv:
                fd = fds[st["cur"]]
            os.write(fd, buf)
            n += 1
            with cv:
                st["pending"] += REC
                if st["pending"] >= batch:
                    cv.notify()
            lag = t0 + n * REC / rate - time.perf_counter()
            if lag > 0:
                time.sleep(lag)

    def syncer():
        while not st["stop"]:
            with cv:
                while st["pending"] < batch and not st["stop"]:
                    cv.wait(0.1)
                fd = fds[st["cur"]]
                st["pending"] = 0
                if mode == "two":
                    st["cur"] ^= 1
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e3)

    threads = [threading.Thread(target=writer), threading.Thread(target=syncer)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    st["stop"] = True
    for t in threads:
        t.join()
    for fd, p in zip(fds, paths):
        os.close(fd)
        os.unlink(p)
    lat.sort()
    return len(lat), lat[len(lat) // 2], lat[len(lat) * 9 // 10]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--rate-mb", type=float, default=300)
    ap.add_argument("--batch-mb", type=float, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    for _ in range(a.reps):
        for mode in ("same", "two"):
            n, p50, p90 = run(a.dir, mode, a.rate_mb * 1e6, int(a.batch_mb * (1 << 20)), a.seconds)
            print("%s: %d syncs, p50 %.2f ms, p90 %.2f ms" % (mode, n, p50, p90))


if __name__ == "__main__":
    main()
