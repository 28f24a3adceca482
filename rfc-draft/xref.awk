# Fill the empty cross-reference links of mmark's HTML output.
#
# mmark -html renders a cross reference "(#id)" as <a href="#id"></a>:
# xml2rfc would number it, but the HTML preview shows nothing. This script
# reads the HTML twice (awk -f xref.awk f.html f.html): the first pass maps
# each heading id to its text and each figure or table id to its caption,
# the second pass writes the HTML with those texts inside the links.
# Portable awk (mawk, gawk, busybox): no match() captures.

function attr(s, name,    i, rest) {
	i = index(s, name "=\"")
	if (i == 0) return ""
	rest = substr(s, i + length(name) + 2)
	return substr(rest, 1, index(rest, "\"") - 1)
}
function text_after_tag(s,    i, rest, j) {
	i = index(s, ">")
	rest = substr(s, i + 1)
	j = index(rest, "<")
	if (j > 0) rest = substr(rest, 1, j - 1)
	sub(/[ \t]+$/, "", rest)
	return rest
}

NR == FNR {
	if ($0 ~ /^<h[1-6][^>]* id="/) {
		id = attr($0, "id")
		if (id != "") label[id] = text_after_tag($0)
	} else if ($0 ~ /<figure id="/) {
		pending = attr($0, "id")
	} else if (pending != "" && index($0, "<figcaption>") > 0) {
		label[pending] = text_after_tag(substr($0, index($0, "<figcaption>")))
		pending = ""
	}
	next
}

{
	line = $0
	out = ""
	while ((i = index(line, "<a href=\"#")) > 0) {
		rest = substr(line, i)
		j = index(rest, "\">")
		id = substr(rest, 11, j - 11)
		tail = substr(rest, j + 2)
		if (substr(tail, 1, 4) == "</a>" && (id in label)) {
			out = out substr(line, 1, i - 1) "<a href=\"#" id "\">" label[id] "</a>"
			line = substr(tail, 5)
		} else {
			out = out substr(line, 1, i - 1) substr(rest, 1, j + 1)
			line = tail
		}
	}
	print out line
}
