FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu torch && pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1
ENTRYPOINT []
