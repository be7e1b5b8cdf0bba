#!/usr/bin/env bash
# Build (and optionally push) every container image the pipeline's modules name, tagged with
# exactly those names under one registry, so that `<engine>.registry = '<registry>'` in a
# Nextflow config runs the pipeline on them.
#
#   containers/build.sh                          # cpu, cuda and multiqc as localhost/... with podman or docker
#   containers/build.sh cpu multiqc              # what -profile test,podman needs (no GPU image)
#   containers/build.sh --registry ghcr.io/myorg --push      # then: docker.registry = 'ghcr.io/myorg'
#
# Image names come from the `container` lines of modules/local/**/main.nf (e.g.
# seqalignatac/seqalignatac:0.1.0, seqalignatac/seqalignatac:0.1.0-cuda, seqalignatac/multiqc:1.27.1).
#
# Environment (all optional):
#   CONTAINER_ENGINE        podman or docker (default: podman if installed, else docker)
#   CONTAINER_BASE_IMAGE    base image for every Dockerfile (default python:3.11-slim-bookworm)
#   CONTAINER_BUILD_OPTS    extra build options, e.g. host network, CA bundle, a wheel folder
#                           mounted with --build-arg PIP_FIND_LINKS=... (then the CPU torch wheel
#                           is taken from that folder instead of the PyTorch index)
#   TORCH_VERSION           the torch release in both images (default 2.13.0)
#   TORCH_CPU_INDEX_URL     index of the CPU torch build (default https://download.pytorch.org/whl/cpu)
#   TORCH_CUDA_SPEC / TORCH_CUDA_INDEX_URL   the CUDA torch build (default torch==<pin> from PyPI,
#                           CUDA 13; e.g. torch==2.13.0+cu126 from https://download.pytorch.org/whl/cu126
#                           for hosts with an older driver)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

root="$(cd "$(dirname "$0")/.." && pwd)"
registry=localhost
push=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --registry) registry="${2:?--registry needs a value}"; shift 2 ;;
        --registry=*) registry="${1#*=}"; shift ;;
        --push) push=true; shift ;;
        -h|--help) usage; exit 0 ;;
        cpu|cuda|multiqc) targets+=("$1"); shift ;;
        all) targets+=(cpu cuda multiqc); shift ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(cpu cuda multiqc)

engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else echo "build.sh: neither podman nor docker is installed; set CONTAINER_ENGINE" >&2; exit 2
    fi
fi

# The image names the modules use: the single source of the tags.
mapfile -t names < <(grep -rhoE "seqalignatac/[a-z0-9_-]+:[A-Za-z0-9._-]+" "$root/modules" --include=main.nf | sort -u)
image_for() {  # target -> the module image name it builds
    local n
    for n in "${names[@]}"; do
        case "$1" in
            cpu)     [[ "$n" == seqalignatac/seqalignatac:* && "$n" != *-cuda ]] && { echo "$n"; return; } ;;
            cuda)    [[ "$n" == seqalignatac/seqalignatac:*-cuda ]] && { echo "$n"; return; } ;;
            multiqc) [[ "$n" == seqalignatac/multiqc:* ]] && { echo "$n"; return; } ;;
        esac
    done
    echo "build.sh: no module names an image for '$1'" >&2
    return 1
}

base="${CONTAINER_BASE_IMAGE:-python:3.11-slim-bookworm}"
read -r -a extra <<< "${CONTAINER_BUILD_OPTS:-}"
cpu_index="${TORCH_CPU_INDEX_URL-https://download.pytorch.org/whl/cpu}"
case " ${CONTAINER_BUILD_OPTS:-} " in *PIP_FIND_LINKS=*) cpu_index="${TORCH_CPU_INDEX_URL-}" ;; esac
torch_version="${TORCH_VERSION:-2.13.0}"

build() {  # target
    local target="$1" image file ignore args=()
    image="$registry/$(image_for "$target")" || exit 1
    case "$target" in
        cpu)  file=Dockerfile; args=(--build-arg "TORCH_SPEC=torch==${torch_version}+cpu" --build-arg "TORCH_INDEX_URL=${cpu_index}") ;;
        # No local wheel folder for CUDA: its CPU wheel (2.13.0+cpu) would outrank PyPI's 2.13.0.
        cuda) file=Dockerfile; args=(--build-arg "TORCH_SPEC=${TORCH_CUDA_SPEC:-torch==${torch_version}}" --build-arg "TORCH_INDEX_URL=${TORCH_CUDA_INDEX_URL:-}"
                                     --build-arg PIP_FIND_LINKS= --build-arg REQUIRE_CUDA=1) ;;
        multiqc) file=Dockerfile.multiqc; args=(--build-arg "MULTIQC_VERSION=${image##*:}") ;;
    esac
    ignore="$root/containers/$file.dockerignore"
    [ "$engine" = podman ] && args+=(--ignorefile "$ignore")   # docker (BuildKit) finds it by name
    echo "build.sh: $engine build $image (containers/$file, base $base)" >&2
    "$engine" build "${extra[@]}" --build-arg "BASE=$base" "${args[@]}" \
        -f "$root/containers/$file" -t "$image" "$root"
    if $push; then
        echo "build.sh: $engine push $image" >&2
        "$engine" push "$image"
    fi
}

for t in "${targets[@]}"; do build "$t"; done
echo "build.sh: done; point the pipeline at the images with: $(basename "$engine").registry = '${registry}'" >&2
