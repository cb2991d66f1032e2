#!/usr/bin/env bash
# Fetches the peers' sources that bench builds TFLite Micro from, at the
# exact revisions its figures were measured with (TFLM's own pins), into a
# cache directory, laid out as BENCH_PEERS_DIR expects:
#
#   scripts/fetch-peers.sh [DIR]      (default ~/.cache/bench/peers)
#   export BENCH_PEERS_DIR=DIR        then scripts/peers-check.sh checks the
#                                     build against the measured counts
#
# Each repository is fetched at one commit (shallow where the host serves a
# commit by its hash) and trimmed as the reference snapshot is: TFLM
# without its C++ tests, test data, examples and docs (bench's build lists
# TFLM's shared sources by walking the tree, so a test file left in would
# be compiled into the library). Nothing is patched: bench applies TFLM's
# flatbuffers patch as a define. Rerunning keeps what is already there.
set -euo pipefail
dest="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/bench/peers}"
mkdir -p "$dest"

# folder, repository, revision (a commit, or a tag)
pins=(
    "tflite-micro https://github.com/tensorflow/tflite-micro 90b983c2b3f1480642e040bbd2ddb37b998f3424"
    "cmsis-nn https://github.com/ARM-software/CMSIS-NN 4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"
    "cmsis-6 https://github.com/ARM-software/CMSIS_6 5782d6f8057906d360f4b95ec08a2354afe5c9b9"
    "flatbuffers https://github.com/google/flatbuffers v25.9.23"
    "gemmlowp https://github.com/google/gemmlowp 719139ce755a0f31cbf1c37f7f98adcc7fc9f425"
    "ruy https://github.com/google/ruy d37128311b445e758136b8602d1bbd2a755e115d"
    "cortex-dfp https://github.com/ARM-software/Cortex_DFP c2c70a97"
    "mlperf-tiny https://github.com/mlcommons/tiny 1afd2c98"
)

# Checks out `revision` of `url` into `dir`: a shallow fetch of a full
# commit hash or a tag, a full clone for an abbreviated hash.
fetch() {
    local dir=$1 url=$2 revision=$3
    git init -q "$dir"
    git -C "$dir" remote add origin "$url"
    if [[ ${#revision} -eq 40 || $revision == v* ]]; then
        git -C "$dir" fetch -q --depth 1 origin "$revision"
        git -C "$dir" checkout -q FETCH_HEAD
    else
        git -C "$dir" fetch -q origin
        git -C "$dir" checkout -q "$revision"
    fi
    rm -rf "$dir/.git"
}

for pin in "${pins[@]}"; do
    read -r folder url revision <<<"$pin"
    if [ -e "$dest/$folder/.bench-revision" ] && [ "$(cat "$dest/$folder/.bench-revision")" = "$revision" ]; then
        continue
    fi
    echo "fetch-peers: $folder at $revision"
    rm -rf "$dest/$folder.partial"
    fetch "$dest/$folder.partial" "$url" "$revision"
    echo "$revision" >"$dest/$folder.partial/.bench-revision"
    rm -rf "$dest/$folder"
    mv "$dest/$folder.partial" "$dest/$folder"
done

# TFLM as the snapshot keeps it: tensorflow/, signal/, third_party/ and the
# licence, without C++ tests, test data, examples, docs or Python bindings.
tflm="$dest/tflite-micro"
if [ ! -e "$tflm/.bench-trimmed" ]; then
    find "$tflm" -mindepth 1 -maxdepth 1 ! -name tensorflow ! -name signal ! -name third_party \
        ! -name LICENSE ! -name .bench-revision -exec rm -rf {} +
    find "$tflm" \( -name '*_test.cc' -o -name '*_test.c' \) -type f -delete
    find "$tflm" -depth -type d \( -name testdata -o -name examples -o -name docs -o -name python \) -exec rm -rf {} +
    touch "$tflm/.bench-trimmed"
fi

echo "fetch-peers: done; export BENCH_PEERS_DIR=$dest"
