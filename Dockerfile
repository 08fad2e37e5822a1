FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONTROLPLANE_VAR_DIR=/app/var \
    WEB_HOST=0.0.0.0

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --home /app app \
    && mkdir -p /app/var \
    && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["honcho", "start", "web"]
