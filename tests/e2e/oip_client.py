"""Talks to a running `wflow serve` with Triton's standard HTTP client (tritonclient.http), as a
user's code would, and checks its answers against EXPECTED (a JSON file the Rust test writes).

Usage: python3 oip_client.py infer HOST:PORT EXPECTED.json     (a model trained by wflow)
       python3 oip_client.py reload HOST:PORT EXPECTED.json    (the admin reload)
       python3 oip_client.py external HOST:PORT EXPECTED.json  (a scikit-learn export)
       python3 oip_client.py raw HOST:PORT EXPECTED.json       (raw columns through a served pipeline)

Exits non-zero with the reason on the first answer that is not what the protocol promises.
"""

import json
import sys
import urllib.error
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def refused(call, fragment):
    """Runs `call`, which must fail with an error whose text contains `fragment`."""
    try:
        call()
    except InferenceServerException as err:
        assert fragment in str(err), f"expected {fragment!r} in {err}"
        return
    raise AssertionError(f"accepted a request that should fail with {fragment!r}")


def labels_of(result):
    """The `label` output of an answer, as text."""
    return [
        v.decode() if isinstance(v, bytes) else str(v)
        for v in result.as_numpy("label").reshape(-1)
    ]


def infer(client, client_url, expected):
    name = expected["model"]
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(name)
    meta = client.get_model_metadata(name)
    assert meta["name"] == name, meta
    assert meta["versions"] == [expected["version"]], meta
    spec = meta["inputs"][0]
    assert spec["shape"] == [-1, expected["features"]], meta
    assert spec["datatype"] == "FP32", meta

    rows = np.array(expected["rows"], dtype=np.float32)
    tensor = httpclient.InferInput(spec["name"], list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    wanted = [
        httpclient.InferRequestedOutput("probabilities", binary_data=False),
        httpclient.InferRequestedOutput("label", binary_data=False),
    ]
    result = client.infer(name, [tensor], outputs=wanted, request_id="req-42")
    response = result.get_response()
    assert response["id"] == "req-42", response
    assert response["model_version"] == expected["version"], response
    probabilities = result.as_numpy("probabilities")
    want = np.array(expected["probabilities"], dtype=np.float32)
    assert probabilities.shape == want.shape, (probabilities.shape, want.shape)
    assert np.allclose(probabilities, want, atol=1e-6), (probabilities, want)
    labels = labels_of(result)
    assert labels == expected["labels"], (labels, expected["labels"])

    # Output selection, a batch of one, the versioned route and FP64 data all work.
    only = client.infer(
        name,
        [tensor],
        outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=False)],
    )
    assert [o["name"] for o in only.get_response()["outputs"]] == ["probabilities"]
    one = httpclient.InferInput(spec["name"], [1, rows.shape[1]], "FP64")
    one.set_data_from_numpy(rows[:1].astype(np.float64), binary_data=False)
    # A named version needs a credential: the caller would otherwise choose the side of a
    # rollout. Triton's client sends it as a header.
    bearer = {"Authorization": f"Bearer {expected['token']}"}
    refused(
        lambda: client.infer(name, [one], model_version=expected["version"]),
        "needs a credential",
    )
    single = client.infer(name, [one], model_version=expected["version"], headers=bearer)
    assert np.allclose(single.as_numpy("probabilities"), want[:1], atol=1e-6)

    # Bad requests are refused with what is wrong, and the server stays up.
    bad = httpclient.InferInput(spec["name"], [2, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32), binary_data=False)
    refused(lambda: client.infer(name, [bad]), "shape")
    other = httpclient.InferInput("nope", list(rows.shape), "FP32")
    other.set_data_from_numpy(rows, binary_data=False)
    refused(lambda: client.infer(name, [other]), "has no input `nope`")
    refused(
        lambda: client.infer(
            name, [tensor], outputs=[httpclient.InferRequestedOutput("x", binary_data=False)]
        ),
        "has no output `x`",
    )
    refused(lambda: client.get_model_metadata("unknown"), "no model `unknown`")
    refused(
        lambda: client.infer(name, [tensor], model_version="99", headers=bearer), "version 99"
    )
    assert client.is_server_live()

    # Ground truth arrives later by request id; live quality follows it.
    def post(path, body, token=expected["token"]):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://{client_url}{path}",
            data=json.dumps(body).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    truth = list(expected["labels"])
    truth[0] = "0" if truth[0] == "1" else "1"  # one wrong prediction out of five
    # Truth moves live quality and retraining: without a credential it is refused.
    status, body = post(f"/v2/models/{name}/feedback", {"id": "req-42", "truth": truth}, None)
    assert status == 401 and "needs a credential" in body["error"], body
    status, body = post(f"/v2/models/{name}/feedback", {"id": "req-42", "truth": truth})
    assert (status, body["matched"], body["version"]) == (200, 5, expected["version"]), body
    status, body = post(f"/v2/models/{name}/feedback", {"id": "req-42", "truth": truth})
    assert status == 404 and "no remembered request" in body["error"], body
    status, body = post(f"/v2/models/{name}/feedback", {"id": "x", "truth": "nope"})
    assert status == 400, body
    with urllib.request.urlopen(f"http://{client_url}/v2/models/{name}/quality") as answer:
        quality = json.load(answer)["versions"][expected["version"]]
    assert quality["rows"] == 5 and abs(quality["accuracy"] - 0.8) < 1e-12, quality

    # Prometheus metrics count what was answered, per model and version.
    with urllib.request.urlopen(f"http://{client_url}/metrics") as answer:
        text = answer.read().decode()
    labels = f'model="{name}",version="{expected["version"]}",arm="champion"'
    requests = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f"wflow_inference_requests_total{{{labels}}}")
    )
    assert requests >= 6, text
    assert f'wflow_inference_errors_total{{{labels},status="400"}}' in text, text
    assert f"wflow_inference_rows_total{{{labels}}} 11" in text, text
    assert f'wflow_inference_seconds_bucket{{{labels},le="+Inf"}}' in text, text
    live = f'model="{name}",version="{expected["version"]}"'
    assert f"wflow_live_accuracy{{{live}}} 0.8" in text, text

    # Triton's defaults: binary tensor data both ways (the binary tensor extension).
    binary = httpclient.InferInput(spec["name"], list(rows.shape), "FP32")
    binary.set_data_from_numpy(rows)
    result = client.infer(name, [binary])
    assert np.allclose(result.as_numpy("probabilities"), want, atol=1e-6)
    decoded = [v.decode() for v in result.as_numpy("label").reshape(-1)]
    assert decoded == expected["labels"], (decoded, expected["labels"])
    mixed = client.infer(
        name,
        [binary],
        outputs=[
            httpclient.InferRequestedOutput("probabilities", binary_data=True),
            httpclient.InferRequestedOutput("label", binary_data=False),
        ],
    )
    assert np.allclose(mixed.as_numpy("probabilities"), want, atol=1e-6)
    parameters = {o["name"]: o.get("parameters", {}) for o in mixed.get_response()["outputs"]}
    assert "binary_data_size" in parameters["probabilities"], parameters
    assert "binary_data_size" not in parameters["label"], parameters
    short = httpclient.InferInput(spec["name"], [rows.shape[0] + 1, rows.shape[1]], "FP32")
    short.set_data_from_numpy(np.zeros((rows.shape[0] + 1, rows.shape[1]), dtype=np.float32))
    short._raw_data = short._raw_data[:-4]
    short._parameters["binary_data_size"] = len(short._raw_data)
    refused(lambda: client.infer(name, [short]), "bytes of binary data")


def external(client, client_url, expected):
    """A model exported by skl2onnx: its own input name, an INT64 or BYTES label output."""
    name = expected["model"]
    meta = client.get_model_metadata(name)
    spec = meta["inputs"][0]
    assert spec["shape"] == [-1, expected["features"]], meta
    rows = np.array(expected["rows"], dtype=np.float32)
    tensor = httpclient.InferInput(spec["name"], list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    result = client.infer(name, [tensor], request_id="sk-1")
    probabilities = result.as_numpy("probabilities")
    want = np.array(expected["probabilities"], dtype=np.float32)
    assert np.allclose(probabilities, want, atol=1e-5), (probabilities, want)
    labels = labels_of(result)
    assert labels == expected["labels"], (labels, expected["labels"])


def raw(client, client_url, expected):
    """A model served with its pipeline: one input per raw column, text as BYTES, all sent as
    binary tensors (the client's default), as a user's code would send a table's columns."""
    name = expected["model"]
    meta = client.get_model_metadata(name)
    listed = [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]]
    want = [(c["name"], c["datatype"], [-1]) for c in expected["columns"]]
    assert listed == want, (listed, want)
    dtypes = {"BYTES": np.object_, "FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_}
    tensors = []
    for column in expected["columns"]:
        values = np.array(column["data"], dtype=dtypes[column["datatype"]])
        tensor = httpclient.InferInput(column["name"], [len(values)], column["datatype"])
        tensor.set_data_from_numpy(values, binary_data=True)
        tensors.append(tensor)
    wanted = [
        httpclient.InferRequestedOutput("probabilities", binary_data=True),
        httpclient.InferRequestedOutput("label", binary_data=True),
    ]
    result = client.infer(name, tensors, outputs=wanted)
    probabilities = result.as_numpy("probabilities")
    want = np.array(expected["probabilities"], dtype=np.float32)
    assert np.allclose(probabilities, want, atol=1e-5), (probabilities, want)
    labels = labels_of(result)
    assert labels == expected["labels"], (labels, expected["labels"])
    # A text column sent as numbers is refused naming it.
    wrong = httpclient.InferInput(expected["columns"][0]["name"], [len(labels)], "FP64")
    wrong.set_data_from_numpy(np.zeros(len(labels)), binary_data=True)
    refused(lambda: client.infer(name, [wrong] + tensors[1:]), expected["columns"][0]["name"])


def reload(client, client_url, expected):
    name = expected["model"]
    refused(lambda: client.load_model(name), "bearer token")
    refused(
        lambda: client.load_model(name, headers={"Authorization": "Bearer wrong"}),
        "bearer token",
    )
    client.load_model(name, headers={"Authorization": f"Bearer {expected['token']}"})
    meta = client.get_model_metadata(name)
    assert meta["versions"] == [expected["version"]], meta


def main():
    mode, url, expected_path = sys.argv[1:4]
    with open(expected_path) as file:
        expected = json.load(file)
    client = httpclient.InferenceServerClient(url=url)
    modes = {"infer": infer, "reload": reload, "external": external, "raw": raw}
    modes[mode](client, url, expected)
    print(f"{mode}: ok")


if __name__ == "__main__":
    main()
