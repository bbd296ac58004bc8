"""LeRobot async inference (LeRobot 0.6.1's `transport.AsyncInference` gRPC service) in front
of the router: `server.py` serves it, `sessions.py` keeps one session per peer, `messages.py`
reads and writes its pickled messages through `unpickle.py`'s restricted unpickler, and
`proto/` holds LeRobot's services.proto with its generated stubs. docs/clients/lerobot.md says
what it does and what it risks."""
