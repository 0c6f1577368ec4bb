package config

import (
	"encoding/json"
	"fmt"
)

func fmtAll(v any) string {
	j, _ := json.Marshal(struct{ S any }{v})
	return fmt.Sprintf("%v %+v %#v %s", v, v, v, j)
}
