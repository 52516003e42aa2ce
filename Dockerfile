# One image for every process of the system; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY alembic.ini Procfile ./
COPY .streamlit ./.streamlit
COPY fcfs ./fcfs
COPY migrations ./migrations
COPY backend ./backend
COPY worker ./worker
COPY batch ./batch
COPY crowd ./crowd
COPY dashboard ./dashboard
EXPOSE 8000
CMD ["python", "-m", "backend", "--host", "0.0.0.0", "--port", "8000"]
