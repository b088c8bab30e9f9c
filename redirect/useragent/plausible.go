package useragent

import "bytes"

// The rules in this file look at the shape of a UA rather than at its
// tokens: what a browser's UA always has, and what only robots write.
// classify applies them after the automaton has read the UA, from what
// scan gathered (byteKind bits, the engine tokens found).

// Bits of byteKind, gathered over the UA for the implausibility rules.
const (
	kindLetter uint8 = 1 << iota
	kindControl
	kindParen
	kindAt // '@': hasEmail looks for an address only in a UA that has one
)

var byteKind = func() (t [256]uint8) {
	for i := range t {
		switch {
		case 'a' <= i && i <= 'z', 'A' <= i && i <= 'Z':
			t[i] = kindLetter
		case i < 0x20 || i == 0x7f:
			t[i] = kindControl
		case i == '(':
			t[i] = kindParen
		case i == '@':
			t[i] = kindAt
		}
	}
	return t
}()

// minPlausibleLen is the shortest UA a browser could send: "Mozilla/5.0
// (X11)" alone is 17 bytes, and real ones are over 60.
const minPlausibleLen = 20

// inAppPrefix starts the UA of every in-app browser. An in-app browser is
// the system's WebView (WKWebView on iOS, Android System WebView, Electron
// on desktops), whose UA is the system browser's, "Mozilla/5.0 (iPhone;
// …", "Mozilla/5.0 (Linux; Android 14; …; wv) …", with the app's marker
// added, usually at the end.
const inAppPrefix = "mozilla/5.0 ("

// robotsPlatform is how robots fill the platform comment: "Mozilla/5.0
// (compatible; ExampleBot/1.0)". Internet Explorer did too ("compatible;
// MSIE 10.0; Windows Phone 8.0; …"), but no in-app browser of a current
// app runs on it.
const robotsPlatform = "compatible"

// inAppBrowser reports whether ua, which carries an in-app marker, is an
// in-app browser's: it starts with "Mozilla/5.0 (", then a platform (up to
// the first ')', with a letter, not "compatible…"), and it names a browser
// engine (engine). classify has already made robots of the UAs with a robot
// token (HTTP library, tool, headless browser, URL, e-mail address…).
//
// Anything else that carries a marker is no person's click: an app's own
// HTTP client ("Instagram 404.0.0.48.76 Android (…)", TikTok's
// "com.zhiliaoapp.musically/… (Linux; U; …; Cronet/…)", YouTube's
// "com.google.ios.youtube/19.49.7 (iPhone16,2; …)", which clients of its
// API such as yt-dlp imitate), like the CFNetwork and Dalvik clients that
// extraBotPatterns names, or a robot's UA with the word added ("ia_archiver
// (Instagram)", "Mozilla/5.0 (compatible; Yeti/1.1) … Instagram"), which
// the marker would otherwise have saved from the crawler list.
func inAppBrowser(ua []byte, engine bool) bool {
	if !engine || len(ua) < len(inAppPrefix) || !equalFoldASCII(ua[:len(inAppPrefix)], inAppPrefix) {
		return false
	}
	platform := ua[len(inAppPrefix):]
	end := bytes.IndexByte(platform, ')')
	if end < 0 {
		return false
	}
	platform = platform[:end]
	if len(platform) >= len(robotsPlatform) && equalFoldASCII(platform[:len(robotsPlatform)], robotsPlatform) {
		return false
	}
	for _, b := range platform {
		if byteKind[b]&kindLetter != 0 {
			return true
		}
	}
	return false
}

// hasEmail reports whether ua holds an e-mail address, as robots write
// their operators' ("+claudebot@anthropic.com", "(anthony@hypem.com)"): a
// letter, digit or '_', then '@', a host label of letters, digits, '_' or
// '-', a '.', and two letters (the regexp \w@[\w-]+\.[a-z]{2,}, ignoring
// ASCII case). A browser writes none. A bare '@' is not enough: Ecosia's
// browser appends "(Ecosia android@150.0.0.0)", whose '@' is followed by a
// version, not a host name.
func hasEmail(ua []byte) bool {
	for off := 0; ; {
		i := bytes.IndexByte(ua[off:], '@')
		if i < 0 {
			return false
		}
		i += off
		off = i + 1
		if i == 0 || !wordByte(ua[i-1]) {
			continue
		}
		j := off
		for j < len(ua) && (wordByte(ua[j]) || ua[j] == '-') {
			j++
		}
		if j > off && j+2 < len(ua) && ua[j] == '.' && byteKind[ua[j+1]]&byteKind[ua[j+2]]&kindLetter != 0 {
			return true
		}
	}
}

// wordByte reports whether b is an ASCII letter, digit or '_' (\w).
func wordByte(b byte) bool {
	return byteKind[b]&kindLetter != 0 || '0' <= b && b <= '9' || b == '_'
}
