"""A KServe v2 / Open Inference Protocol facade on the router, so that unmodified
`tritonclient.grpc`, `tritonclient.grpc.aio` and `tritonclient.http` call it as they would
call Triton (docs/clients/kserve.md).

    models.py       the models it exposes (`route` and the contract's routes), their metadata,
                    config and readiness, built once per active contract
    tensors.py      the one input tensor (`observation`) in, the one output (`action`) out
    http_codec.py   HTTP inference bodies: JSON, and the binary tensor extension
    params.py       request parameters: robot, episode, task, deadline
    service.py      one decoded inference request → `ActEngine.serve` → reply parameters;
                    router errors → KServe status codes
    grpc_service.py `inference.GRPCInferenceService` on the router's gRPC port
    http_routes.py  `/v2/...` on the router's HTTP port (JSON and binary tensors)

Every inference goes through `ActEngine.serve`, the admission path of every transport.
"""
