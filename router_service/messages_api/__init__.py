"""The Anthropic Messages API (``POST /v1/messages``) over the chat pipeline: ``protocol``
validates the client's body, ``request`` translates it to one chat-completions body,
``output`` / ``events`` translate the backend's chat answer (whole or streamed) back,
``mapping`` holds the correspondences shared with the Anthropic backend."""
