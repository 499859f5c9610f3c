#!/usr/bin/env bash
# Builds and pushes the images of capture, writer and the pg2bq CLI (infra/docker/Dockerfile).
#
#   image.sh build        docker build of the three images
#   image.sh push         docker push of the three images (IMAGE_REPO required)
#   image.sh cloudbuild   build and push in Cloud Build, no local Docker needed (IMAGE_REPO required)
#
# IMAGE_REPO: where the images go, e.g. us-central1-docker.pkg.dev/my-project/pg2bq
#             (local builds without it are tagged pg2bq/<name>).
# IMAGE_TAG:  the tag (default: the commit, e.g. 1a2b3c4, with -dirty for local changes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

IMAGES=(capture writer cli)
DOCKERFILE=infra/docker/Dockerfile
REPO="${IMAGE_REPO:-}"
TAG="${IMAGE_TAG:-$(git describe --always --dirty --abbrev=7 2>/dev/null || echo dev)}"

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

need_repo() {
  [[ -n "$REPO" ]] || die "set IMAGE_REPO, e.g. make $1 IMAGE_REPO=us-central1-docker.pkg.dev/my-project/pg2bq"
}

image_name() { printf '%s/%s:%s' "${REPO:-pg2bq}" "$1" "$TAG"; }

need_docker() {
  if ! command -v docker >/dev/null 2>&1; then
    die "docker is not installed. Build in Cloud Build instead (needs only gcloud): make image-cloud IMAGE_REPO=REGION-docker.pkg.dev/PROJECT/REPO"
  fi
  if ! docker info >/dev/null 2>&1; then
    die "docker cannot reach a Docker daemon (is it running, and may this user use it?). Build in Cloud Build instead (needs only gcloud): make image-cloud IMAGE_REPO=REGION-docker.pkg.dev/PROJECT/REPO"
  fi
}

build() {
  need_docker
  local name
  for name in "${IMAGES[@]}"; do
    printf '==> %s\n' "$(image_name "$name")"
    DOCKER_BUILDKIT=1 docker build -f "$DOCKERFILE" --target "$name" -t "$(image_name "$name")" .
  done
}

push() {
  need_repo image-push
  need_docker
  local name
  for name in "${IMAGES[@]}"; do
    docker push "$(image_name "$name")"
  done
}

cloudbuild() {
  need_repo image-cloud
  command -v gcloud >/dev/null 2>&1 ||
    die "gcloud is not installed: https://cloud.google.com/sdk/docs/install"
  gcloud builds submit --config infra/docker/cloudbuild.yaml \
    --substitutions "_IMAGE_REPO=$REPO,_TAG=$TAG" .
}

case "${1:-}" in
  build) build ;;
  push) push ;;
  cloudbuild) cloudbuild ;;
  *) die "usage: $0 build|push|cloudbuild" ;;
esac

if [[ "${1}" != push ]]; then
  printf '\nImages (tag %s):\n' "$TAG"
  for name in "${IMAGES[@]}"; do printf '  %s\n' "$(image_name "$name")"; done
fi
