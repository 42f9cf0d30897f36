"""The reference: a bare FastAPI endpoint that reads the body and answers 202, served by
uvicorn with exactly the options ``xoev-gateway serve`` uses."""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway.cli.serve import UVICORN_OPTIONS

app = FastAPI()


@app.post("/v1/submissions", status_code=202)
async def submit(request: Request) -> Response:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    sid = str(uuid.uuid4())
    location = f"/v1/submissions/{sid}"
    return JSONResponse(
        {"id": sid, "status": "accepted", "links": {"self": location}},
        status_code=202,
        headers={"Location": location},
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
