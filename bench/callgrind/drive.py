"""Fixed-count driver for bench/callgrind.sh (standard library only).

Creates an API and KEYS keys, verifies each once (so every key record is cached and the
server has warmed up), zeroes the server's callgrind counters, sends COUNT requests of MODE
on one keep-alive connection, waits a second (so background work caused by the requests,
such as the usage writer's batches, lands in the window), and dumps the counters.

usage: drive.py PORT ROOT_KEY COUNT KEYS SERVER_PID MODE(verify|liveness)
"""

import http.client
import json
import subprocess
import sys
import time


def main() -> None:
    port, root, count, keys_n, pid, mode = sys.argv[1:7]
    count, keys_n = int(count), int(keys_n)
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    headers = {"Authorization": f"Bearer {root}", "Content-Type": "application/json"}

    def post(path: str, body: dict) -> dict:
        conn.request("POST", path, json.dumps(body), headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        if response.status != 200:
            sys.exit(f"{path} answered {response.status}: {data}")
        return data["data"]

    api = post("/v2/apis.createApi", {"name": "callgrind"})["apiId"]
    keys = [post("/v2/keys.createKey", {"apiId": api})["key"] for _ in range(keys_n)]
    bodies = [json.dumps({"key": key}) for key in keys]
    for body in bodies:
        conn.request("POST", "/v2/keys.verifyKey", body, headers)
        conn.getresponse().read()
    time.sleep(2)

    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    for i in range(count):
        if mode == "liveness":
            conn.request("GET", "/v2/liveness")
        else:
            conn.request("POST", "/v2/keys.verifyKey", bodies[i % len(bodies)], headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or (mode == "verify" and b'"valid":true' not in body):
            sys.exit(f"request {i} answered {response.status}: {body[:200]!r}")
    time.sleep(1)
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)


if __name__ == "__main__":
    main()
