#!/usr/bin/env bash
# Raw-HTTP reference points for bench.py: the same registry API calls done with plain curl,
# no client-side hashing, no retries, no checks beyond HTTP status (-f).
#
#   raw.sh read  URL REPO DIGEST...
#       GET every blob to /dev/null, all in parallel in one curl process (-Z);
#       prints each transfer's byte count.
#   raw.sh copy  SRC_URL SRC_REPO SRC_TAG DST_URL DST_REPO DST_TAG JOBS DIGEST...
#       per blob, JOBS at a time: POST an upload session at DST, then
#       `curl GET SRC | curl PUT -T - DST` (one streamed monolithic PUT, chunked encoding);
#       then GET the manifest from SRC and PUT it, byte for byte, at DST.
#   raw.sh mount URL SRC_REPO SRC_TAG DST_REPO DST_TAG DIGEST...
#       per blob (sequentially) a cross-repository mount POST; then the manifest as above.
#   raw.sh retag URL NEW_TAG REPO:TAG...
#       the two-curl recipe per image: GET the manifest into a file (Accept: all four
#       manifest types), PUT that file under NEW_TAG with the Content-Type it came with.
set -euo pipefail

ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
rcurl() { curl -sS -f --noproxy '*' "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/regshift-bench-raw.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# copy_manifest SRC_URL SRC_REPO SRC_TAG DST_URL DST_REPO DST_TAG
copy_manifest() {
  local file="$tmp/manifest.$RANDOM.$$" ct
  ct=$(rcurl -H "Accept: $ACCEPT" -o "$file" -w '%{content_type}' "$1/v2/$2/manifests/$3")
  rcurl -o /dev/null -X PUT -H "Content-Type: $ct" --data-binary @"$file" \
    "$4/v2/$5/manifests/$6"
}

# upload_session URL REPO [QUERY] -> Location of a new upload session (or empty on 201)
upload_session() {
  rcurl -o /dev/null -X POST -w '%header{location}' "$1/v2/$2/blobs/uploads/${3:-}"
}

# stream_blob SRC_URL SRC_REPO DST_URL DST_REPO DIGEST
stream_blob() {
  local location
  location=$(upload_session "$3" "$4")
  case "$location" in
    http*) ;;
    *) location="$3$location" ;;
  esac
  rcurl "$1/v2/$2/blobs/$5" |
    rcurl -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T - \
      "$location&digest=$5"
}

mode=${1:?usage: raw.sh read|copy|mount|retag ...}
shift
case "$mode" in
  read)
    url=$1 repo=$2
    shift 2
    args=()
    for digest in "$@"; do
      args+=(-o /dev/null "$url/v2/$repo/blobs/$digest")
    done
    rcurl -Z --parallel-max 64 --no-progress-meter -w '%{size_download}\n' "${args[@]}"
    ;;
  copy)
    src_url=$1 src_repo=$2 src_tag=$3 dst_url=$4 dst_repo=$5 dst_tag=$6 jobs=$7
    shift 7
    export -f rcurl stream_blob upload_session
    printf '%s\n' "$@" |
      xargs -P "$jobs" -I{} bash -c 'set -euo pipefail; stream_blob "$@"' _ \
        "$src_url" "$src_repo" "$dst_url" "$dst_repo" {}
    copy_manifest "$src_url" "$src_repo" "$src_tag" "$dst_url" "$dst_repo" "$dst_tag"
    ;;
  mount)
    url=$1 src_repo=$2 src_tag=$3 dst_repo=$4 dst_tag=$5
    shift 5
    for digest in "$@"; do
      rcurl -o /dev/null -X POST \
        "$url/v2/$dst_repo/blobs/uploads/?mount=$digest&from=$src_repo"
    done
    copy_manifest "$url" "$src_repo" "$src_tag" "$url" "$dst_repo" "$dst_tag"
    ;;
  retag)
    url=$1 new_tag=$2
    shift 2
    for ref in "$@"; do
      copy_manifest "$url" "${ref%:*}" "${ref##*:}" "$url" "${ref%:*}" "$new_tag"
    done
    ;;
  *)
    echo "raw.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
