package useragent

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:generate sh update-crawler-list.sh

// crawlerListJSON is crawler-user-agents.json of the npm package
// crawler-user-agents (MIT licence, in crawler-user-agents.LICENSE), at
// CrawlerListVersion. The Go module of the same project stopped being
// published years ago; the npm package follows the list.
//
//go:embed crawler-user-agents.json
var crawlerListJSON []byte

// crawler is one entry of the crawler list. The list has more fields
// (url, description, tags, addition_date): the classifier needs none.
type crawler struct {
	// Pattern is a regexp, case-sensitive, in a syntax that RE2 reads.
	Pattern string `json:"pattern"`
	// Instances are example UAs that Pattern matches.
	Instances []string `json:"instances"`
}

// crawlerList is the embedded crawler list, parsed.
var crawlerList = func() []crawler {
	cs, err := parseCrawlerList(crawlerListJSON)
	if err != nil {
		panic(fmt.Sprintf("useragent: %v", err))
	}
	return cs
}()

func parseCrawlerList(b []byte) ([]crawler, error) {
	var cs []crawler
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("cannot parse crawler-user-agents.json %s: %w", CrawlerListVersion, err)
	}
	for i, c := range cs {
		if c.Pattern == "" {
			return nil, fmt.Errorf("crawler-user-agents.json %s: entry %d has no pattern", CrawlerListVersion, i)
		}
	}
	return cs, nil
}
