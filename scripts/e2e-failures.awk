#!/usr/bin/awk -f
# Prints, for each test that failed in a `go test -v` log, the test's own
# lines: its t.Log/t.Error lines and, from the output of the tools it
# streamed (harness lines "[<cluster> <target>] ..."), only the lines that
# report a failure. At most the last 40 lines per test.
/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; if (!(cur in seen)) { seen[cur] = 1; order[++n] = cur }; next }
/^ *--- FAIL: / { failed[$3] = 1; next }
/^ *--- (PASS|SKIP): / { next }
cur == "" || $0 !~ /^ / { next }
{
	streamed = ($0 ~ /^ +[a-z0-9_]+_test\.go:[0-9]+: \[[^]]+\] /)
	if (streamed && $0 !~ /(failed|✗|[Ee]rror)/) next
	c = ++count[cur]
	line[cur, c] = $0
}
END {
	for (i = 1; i <= n; i++) {
		t = order[i]
		if (!(t in failed)) continue
		print "--- " t
		from = count[t] > 40 ? count[t] - 39 : 1
		for (j = from; j <= count[t]; j++) print line[t, j]
	}
}
