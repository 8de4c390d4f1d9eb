#!/bin/sh
# Make the secret files of the compose stack (docker-compose.yml, docs/deploy.md):
#   sh deploy/make-secrets.sh [DIR]          # DIR: deploy/secrets (LESSDATA_SECRETS_DIR)
# One random value per file, a self-signed certificate for MLflow's TLS proxy (names
# mlflow, localhost, 127.0.0.1). Existing files are kept: run it again to add what is
# missing; delete a file and run it to rotate that secret. The folder is mode 700 (only
# you on the host); the files are 644 inside it, because compose bind-mounts them into
# containers whose users (postgres 999, nginx 101, mlflow and ray 1000) must read them.
set -eu
dir=${1:-${LESSDATA_SECRETS_DIR:-$(dirname "$0")/secrets}}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

random() {
    python3 -c "import secrets; print(secrets.token_urlsafe(32), end='')"
}

for name in ray_auth_token postgres_password mlflow_flask_secret_key \
            mlflow_admin_password mlflow_tracking_password; do
    if [ ! -s "$dir/$name" ]; then
        random > "$dir/$name"
        echo "made $dir/$name"
    fi
done

if [ ! -s "$dir/mlflow_tls.key" ] || [ ! -s "$dir/mlflow_tls.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=mlflow" -addext "subjectAltName=DNS:mlflow,DNS:localhost,IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -keyout "$dir/mlflow_tls.key" -out "$dir/mlflow_tls.crt" 2>/dev/null
    echo "made $dir/mlflow_tls.key and $dir/mlflow_tls.crt (self-signed, 825 days)"
fi
chmod 644 "$dir"/*
