package redirect

import "github.com/clickgate/clickgate/counter"

// appendPreviewPage appends the page that link-unfurl fetchers get: the
// link's OpenGraph and Twitter card tags, and a refresh to location for a
// person who lands on it. Every value is HTML-escaped.
func appendPreviewPage(dst []byte, card *counter.Card, pageURL string, location []byte) []byte {
	dst = append(dst, "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n<title>"...)
	dst = appendEscaped(dst, card.Title)
	dst = append(dst, "</title>\n"...)
	meta := func(attr, name, content string) {
		if content == "" {
			return
		}
		dst = append(dst, "<meta "...)
		dst = append(dst, attr...)
		dst = append(dst, "=\""...)
		dst = append(dst, name...)
		dst = append(dst, "\" content=\""...)
		dst = appendEscaped(dst, content)
		dst = append(dst, "\">\n"...)
	}
	meta("property", "og:type", "website")
	meta("property", "og:url", pageURL)
	meta("property", "og:title", card.Title)
	meta("property", "og:description", card.Description)
	meta("property", "og:image", card.Image)
	if card.Image != "" {
		meta("name", "twitter:card", "summary_large_image")
	} else {
		meta("name", "twitter:card", "summary")
	}
	meta("name", "twitter:title", card.Title)
	meta("name", "twitter:description", card.Description)
	meta("name", "twitter:image", card.Image)
	dst = append(dst, "<meta http-equiv=\"refresh\" content=\"0; url="...)
	dst = appendEscaped(dst, location)
	dst = append(dst, "\">\n</head><body><a href=\""...)
	dst = appendEscaped(dst, location)
	dst = append(dst, "\">Continue</a></body></html>\n"...)
	return dst
}

// appendEscaped appends s escaped for HTML text and quoted attributes.
func appendEscaped[T string | []byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&#34;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
