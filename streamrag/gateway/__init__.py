"""The HTTP gateway (``streamrag gateway``): an ASGI service in front of the query workers and the documents
topic. It speaks the project's own JSON (``/v1/query``, ``/v1/documents``, ``/v1/feedback``), OpenAI's chat API
(``/v1/chat/completions``) and serves a chat page; it talks to the workers over Kafka only."""
