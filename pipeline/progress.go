package pipeline

// Progress receives a stage's advance (snapshot's rows, resolve's
// lookups). Stages never print: the command picks a terminal bar, log
// lines or nothing (cmd/lapse). Start's total is 0 when the stage cannot
// know it (a snapshot streams its source).
type Progress interface {
	Start(total int)
	Add(n int)
	Done()
}

// NoProgress reports nothing.
type NoProgress struct{}

func (NoProgress) Start(int) {}
func (NoProgress) Add(int)   {}
func (NoProgress) Done()     {}
