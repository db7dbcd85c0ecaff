#!/bin/sh
# acme/files.count: the protocol by hand. Input: one JSON line on stdin; result: a JSON
# object in $KESTRA_TRIO_RESULT_FILE; stdout lines are INFO log lines, stderr lines starting
# with WARN are WARN lines. (The input schema keeps quotes out of `dir`, so sed can read it.)
input=$(cat)
dir=$(printf '%s' "$input" | sed -n 's/.*"dir": *"\([^"]*\)".*/\1/p')
if [ ! -d "$dir" ]; then
    echo "ERROR $dir is not a directory" >&2
    printf '{"error": {"message": "no such directory: %s", "type": "NotFound"}}' "$dir" > "$KESTRA_TRIO_RESULT_FILE"
    exit 2
fi
echo "counting the entries of $dir"
count=$(ls -A "$dir" | wc -l | tr -d ' ')
[ "$count" -eq 0 ] && echo "WARN $dir is empty" >&2
printf '{"outputs": {"count": %s}}' "$count" > "$KESTRA_TRIO_RESULT_FILE"
