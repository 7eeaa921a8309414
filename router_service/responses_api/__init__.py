"""The OpenAI Responses API (``POST /v1/responses``) over chat-completions backends.

``protocol``: the client's body -> validated Responses objects. ``request``: those -> one
chat-completions body (what every backend speaks) and the text the privacy scan reads.
``output``: a chat completion -> the Responses ``response`` object. ``events``: chat SSE
chunks -> the typed Responses stream events. All pure; the route is ``api.responses_api``."""
