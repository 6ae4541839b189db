"""Check that the S3 server behind AWS_ENDPOINT_URL honours ``If-None-Match: *`` atomically: K writers PUT the
same new key at once and exactly one may succeed. LanceDB's concurrent commits on S3 rely on it (older SeaweedFS
releases let every such PUT succeed). Uses obstore: the Rust object_store that Lance itself commits through.

    python scripts/s3/check_conditional_put.py BUCKET K
"""

from __future__ import annotations

import os
import sys
import threading
import uuid

import obstore
from obstore.exceptions import AlreadyExistsError
from obstore.store import S3Store


def main(bucket: str, writers: int) -> int:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    store = S3Store(bucket, endpoint=endpoint, region=os.environ.get("AWS_REGION", "us-east-1"),
                    access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                    secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                    client_options={"allow_http": endpoint.startswith("http://")})
    key = f"_streamrag_check/{uuid.uuid4().hex}"
    start = threading.Barrier(writers)
    results: list[str] = []

    def put(i: int) -> None:
        start.wait()
        try:
            obstore.put(store, key, str(i).encode(), mode="create")
            results.append("ok")
        except AlreadyExistsError:
            results.append("refused")
        except Exception as exc:
            results.append(f"error: {str(exc).splitlines()[0][:160]}")

    threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    obstore.delete(store, key)
    wins, errors = results.count("ok"), [r for r in results if r.startswith("error")]
    if errors:
        print(f"s3: conditional PUT check failed: {errors[0]}", file=sys.stderr)
        return 1
    if wins != 1:
        print(f"s3: {wins} of {writers} concurrent conditional PUTs (If-None-Match: *) to one key succeeded; "
              "exactly one must: concurrent LanceDB commits would overwrite each other on this server", file=sys.stderr)
        return 1
    print(f"s3: conditional PUTs ok (1 of {writers} concurrent writers won)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1], int(sys.argv[2])))
    except Exception as exc:  # one readable line for s3-up
        print(f"s3: conditional PUT check failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        sys.exit(1)
