"""The mutants of `make mutation-check` (tests/mutation/run.py).

Two kinds:

FLUSH_SITES: every call of a flush (dev_flush, fsync, fdatasync, ...) in
src/*.c, named FILE:FUNCTION:K (the K-th flush call in FUNCTION). run.py
finds the calls itself and makes one mutant per call, the call replaced by 0
(a flush that "succeeds" without flushing). Every call it finds must have an
entry here, and every entry must name a call it finds, so a new flush site
cannot be forgotten. An entry is one of
  {"kill": [CASE, ...], "breaks": "..."}  the mutant must be killed; the
      crash-tier cases are tried in this order first, then the others
  {"equivalent": "..."}  no crash state can tell the mutant from the
      original (the argument is the text); not run unless --all
  {"outside": "..."}  not part of what the crash model sees; not run

ORDER: hand-listed write-ordering decisions, each as a patch of exact
source text that must match exactly once. Each says which ordered pair it
swaps and what that breaks.

CASES: the crash tier's cases, run with CRASH_TIER=quick: (test file,
TEST_ONLY pattern of the case's name).
"""

CASES = {
    "t20-limit": ("tests/host/t20-crash-states.sh", "write limit binds"),
    "t20-luks1": ("tests/host/t20-crash-states.sh", "LUKS1, 128K steps"),
    "t25-journal": ("tests/host/t25-reencrypt-crash.sh", "journal path"),
    "t25-shift": ("tests/host/t25-reencrypt-crash.sh", "shift path"),
    "t20-used": ("tests/host/t20-crash-states.sh", "used-only, fragmented"),
    "t16-crash": ("tests/host/t16-detached.sh", "crash states, LUKS2 512"),
    "t17-crash": ("tests/host/t17-decrypt.sh", "crash states"),
    "t18-crash": ("tests/host/t18-decrypt-attached.sh", "crash states"),
    "t19-crash": ("tests/host/t19-reencrypt-detached.sh", "crash states, --reencrypt --header"),
}

FLUSH_SITES = {
    "arm.c:write_file:1": {
        "outside": "arm, disarm and finalize write system files (/etc/crypttab,"
                   " the GRUB drop-in, the arm record), never the device or the"
                   " state store; the crash model does not see them. Their"
                   " order is checked by t97 and QEMU scenario 22",
    },
    "arm.c:write_file:2": {
        "outside": "the directory fsync after the rename of a system file"
                   " (see arm.c:write_file:1)",
    },
    "arm.c:remove_bootstrap_key:1": {
        "outside": "the overwrite of the bootstrap key file on /boot before it is"
                   " removed (finalize and disarm): a system file, not the device"
                   " or the state store; t97 checks the order of retirement",
    },
    "state.c:state_mark_started:1": {
        "equivalent": "the started mark on the superblock copies, after record 1:"
                      " without the flush the mark can be lost in a cut, but"
                      " record 1 is durable then, so the resume takes the record"
                      " path; only a store damaged after such a cut (records"
                      " gone, mark lost) would tell, which no crash state of an"
                      " undamaged store is. t62 'superblock but no record'"
                      " checks the mark itself",
    },
    "marker.c:marker_write:1": {
        "equivalent": "the device-side marker's flush, after record 1 and the"
                      " started mark: without it a cut can lose the marker while"
                      " later payload writes survive, but the store is durable"
                      " then, and a resume of a store with a marker offset writes"
                      " a missing marker again (convert.c ensure_marker). Only a"
                      " lost store would tell, which the crash model does not"
                      " make; t64 'in-progress marker' checks the marker itself",
    },
    "engine.c:wipe_marker:1": {
        "kill": ["t20-limit"],
        "breaks": "the flush of the marker's overwrite before the `done` record:"
                  " `done` can be durable while the marker is still on the"
                  " device, and the resume, finding `done`, leaves it there: the"
                  " data area then differs from the uninterrupted run's",
    },
    "engine.c:commit_step:1": {
        "kill": ["t20-limit", "t17-crash", "t18-crash"],
        "breaks": "the device flush before the progress record: a record can be"
                  " durable while the step's output is not, so the resume skips"
                  " a step whose output never reached the disk",
    },
    "engine.c:forward_wipe_tail:1": {
        "kill": ["t18-crash"],
        "breaks": "the flush of the zeros after the moved-down data (--decrypt"
                  " of a header on the device) before the `done` record: `done`"
                  " can be durable with the old ciphertext's tail and any"
                  " keyslot left there, and the resume, finding `done`, leaves"
                  " them",
    },
    "engine.c:write_header:1": {
        "kill": ["t17-crash"],
        "breaks": "the flush of --decrypt's wipe of the detached header"
                  " before the `done` record: `done` can be durable with the"
                  " old header still on its target, and the resume, finding"
                  " `done`, leaves it there: a LUKS header over plaintext",
    },
    "engine.c:write_header:2": {
        "kill": ["t16-crash", "t19-crash"],
        "breaks": "the flush of a detached header's file before the `done`"
                  " record: `done` can be durable with the header file still"
                  " zeros or torn, and the resume, finding `done`, leaves it so:"
                  " the data can never be opened",
    },
    "engine.c:write_header:3": {
        "kill": ["t20-limit"],
        "breaks": "the flush of the new LUKS header before the `done` record:"
                  " `done` can be durable with the header torn or missing, and"
                  " the resume then finds no LUKS header and refuses",
    },
    "job.c:job_prepare_header:1": {
        "outside": "the flush of a new detached header file's size before the"
                   " state store is made. The crash model has no file creation:"
                   " a header file the trace touches exists from then on, so a"
                   " store kept with its header file lost is never produced."
                   " Were it lost, the resume refuses ('does not exist: mount"
                   " the filesystem that holds it'), and nothing of the data is"
                   " at stake: the header is written only at the end, from the"
                   " store's copy. t16 'HDR an existing empty or all-zero file'"
                   " and the resume refusals cover the checks themselves",
    },
    "job.c:flush_dir_of:1": {
        "outside": "the directory entry of a new detached header file: the"
                   " crash model has no directories (the file's own flush,"
                   " job.c:job_prepare_header:1, stands for both)",
    },
    "state.c:state_write_journal:1": {
        "kill": ["t25-journal", "t17-crash"],
        "breaks": "the journal flush before the record naming the journal: the"
                  " record can be durable while the journal holds torn or old"
                  " data, and the replay has no copy of the source",
    },
    "state.c:state_create:1": {
        "kill": ["t20-limit", "t17-crash"],
        "breaks": "the flush of the three superblock copies before the header"
                  " image: a cut can leave the header image on the store with"
                  " no valid superblock, which a resume must take for damage"
                  " and refuse, though nothing was written to the device",
    },
    "state.c:state_create:2": {
        "equivalent": "the header image (and --used-only map) flush: the notes"
                      " and the first record that follow are each flushed before"
                      " any device write, and a store whose header image or map"
                      " fails its checksum with no record is prepared again from"
                      " the untouched device",
    },
    "state.c:state_commit:1": {
        "kill": ["t20-limit", "t17-crash"],
        "breaks": "the state-store flush after a record: the device moves on"
                  " (the next step overwrites a source the record still needs)"
                  " while that record is not durable, so a crash resumes from an"
                  " older record and redoes a step from overwritten source",
    },
    "state.c:state_write_notes:1": {
        "equivalent": "the notes flush: the notes are for the admin and are never"
                      " read by a resume; the first record's flush, before any"
                      " device write, makes them durable anyway",
    },
    "state.c:state_wipe:1": {
        "outside": "`finalize` wipes a finished store; no conversion runs after it",
    },
    "keys.c:key_generate_file:1": {
        "outside": "the generated key file is trace target 2, which the crash"
                   " model leaves out (it rebuilds the device and the store only)",
    },
    "keys.c:sync_parent:1": {
        "outside": "the directory entry of the generated key file, as above",
    },
    "dev.c:dev_flush:1": {
        "outside": "the fdatasync under the traced seam: the trace records the"
                   " flush before the call, and the crash model takes traced"
                   " flushes as durable, so dropping the syscall is invisible"
                   " to it (the seam is the one place every flush goes through)",
    },
}

# Each ORDER mutant: name, the swapped pair and what it breaks, the cases to
# try first, and its patch: (file, [(old, new), ...]), every old text found
# exactly once in the pristine file.
ORDER = [
    {
        "name": "forward-record-before-write",
        "breaks": "forward_steps: the progress record of a step of the forward"
                  " walk (--decrypt of a header on the device) is committed"
                  " before the step's output is written; a crash can leave the"
                  " record durable and the output never written, and the resume"
                  " skips the step",
        "kill": ["t18-crash", "t19-crash"],
        "file": "engine.c",
        "patch": [("""			r = dev_pwrite_full(e->dev, cur, b - a, a);
		}
		if (r == 0)
			r = commit_step(e, &c);
""", """		}
		if (r == 0)
			r = commit_step(e, &c);
		if (r == 0)
			r = dev_pwrite_full(e->dev, cur, b - a, a);
""")],
    },
    {
        "name": "record-before-data-flush",
        "breaks": "commit_step: the progress record is committed before the"
                  " device flush of the step's output; a crash can leave the"
                  " record durable and the output not, and the resume skips the"
                  " step",
        "kill": ["t20-limit", "t17-crash"],
        "file": "engine.c",
        "patch": [("""	struct state_rec rec;
	int r = dev_flush(e->dev);

	if (r < 0)
		return r;
	memset(&rec, 0, sizeof(rec));
""", """	struct state_rec rec;
	int r;

	memset(&rec, 0, sizeof(rec));
"""), ("""	rec.behind = c->behind;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
""", """	rec.behind = c->behind;
	rec.time = (uint64_t)time(NULL);
	r = state_commit(e->state, &rec);
	return r < 0 ? r : dev_flush(e->dev);
""")],
    },
    {
        "name": "write-past-limit",
        "breaks": "pipelined_step: a step's output is written without waiting"
                  " for the record of the step whose source it overwrites"
                  " (geometry_write_limit); a crash then resumes that step from"
                  " overwritten source",
        "kill": ["t20-limit"],
        "file": "engine.c",
        "patch": [("""	while (!p->commit_err && p->durable > limit)
		pthread_cond_wait(&p->cond, &p->lock);
""", """	(void)limit;
""")],
    },
    {
        "name": "journal-record-before-journal",
        "breaks": "journal_step: the record naming the journal is committed"
                  " before the journal data is written and flushed; a crash can"
                  " leave a record whose journal does not hold that step's"
                  " source (LUKS to LUKS) or output (a detached header)",
        "kill": ["t25-journal", "t16-crash", "t17-crash"],
        "file": "engine.c",
        "patch": [("""	int r = state_write_journal(e->state, copy, s->f - s->a);

	if (r < 0)
		return r;
	rec.journal_a = s->a;
""", """	int r;

	rec.journal_a = s->a;
"""), ("""		rec.ahead = *ahead;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}

static int engine_step(""", """		rec.ahead = *ahead;
	rec.time = (uint64_t)time(NULL);
	r = state_commit(e->state, &rec);
	return r < 0 ? r : state_write_journal(e->state, copy, s->f - s->a);
}

static int engine_step(""")],
    },
    {
        "name": "output-before-journal",
        "breaks": "engine_step: a journaled step's output (in place, over its own"
                  " source) is written before the step is journaled and"
                  " recorded; a crash mid-write leaves the source overwritten and"
                  " no copy of it",
        "kill": ["t25-journal", "t16-crash", "t17-crash"],
        "file": "engine.c",
        "patch": [("""	if (e->geo->journal) {
		int r = journal_step(e, s, ahead);
		if (r < 0)
			return r;
	}
	return write_output(e, s->buf, s->a, s->f, ahead);
""", """	int r = write_output(e, s->buf, s->a, s->f, ahead);

	if (r == 0 && e->geo->journal)
		r = journal_step(e, s, ahead);
	return r;
""")],
    },
    {
        "name": "done-before-header",
        "breaks": "engine_finish: the `done` record is committed before the new"
                  " LUKS header is written and flushed; a crash leaves `done`"
                  " durable over a device without its header",
        "kill": ["t20-limit", "t17-crash", "t18-crash"],
        "file": "engine.c",
        "patch": [("""	progress_header(e->progress);
	r = e->geo->forward ? forward_wipe_tail(e) : write_header(e);
""", """	progress_header(e->progress);
	rec.phase = PHASE_DONE;
	rec.time = (uint64_t)time(NULL);
	r = state_commit(e->state, &rec);
	if (r == 0)
		r = e->geo->forward ? forward_wipe_tail(e) : write_header(e);
"""), ("""	rec.phase = PHASE_DONE;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}
""", """	return 0;
}
""")],
    },
    {
        "name": "replay-transforms-output",
        "breaks": "replay_journal: a detached header's journal holds the step's"
                  " output (new ciphertext); the replay encrypts it once more"
                  " instead of writing it as it is, so a resume inside a"
                  " journaled step leaves that step encrypted twice",
        "kill": ["t16-crash"],
        "file": "engine.c",
        "patch": [("""	if (r == 0 && !journal_output(e))
		r = transform(e->enc, e->dec, buf, a, f, 1);""", """	if (r == 0)
		r = transform(e->enc, e->dec, buf, a, f, 1);""")],
    },
    {
        "name": "header-before-last-record",
        "breaks": "run_pipeline: the new LUKS header goes over [0, H) as soon as"
                  " the last step is written, before the committer has recorded"
                  " the last steps, whose sources lie in [0, H); a crash resumes"
                  " them from header bytes",
        "kill": ["t20-limit"],
        "file": "engine.c",
        "patch": [("""	r = write_steps(p);
""", """	r = write_steps(p);
	if (r == 0)
		r = dev_pwrite_full(e->dev, e->header_image, e->geo->header_size, 0);
""")],
    },
    {
        "name": "header-image-before-superblock",
        "breaks": "state_create: the superblock (three copies) is written and"
                  " flushed before the header image, so a store holding a header"
                  " image but no valid superblock is damage, never a cut; written"
                  " the other way round, a cut between them leaves such a store"
                  " and the resume refuses it",
        "kill": ["t20-limit", "t17-crash"],
        "file": "state.c",
        "patch": [("""	r = write_sb_copies(s);
	if (r == 0)
		r = dev_flush(&s->dev);
	if (r < 0)
		return r;
	s->have_sb = 1;
	s->sb_copies = 7;
""", """"""), ("""	if (r == 0)
		r = dev_flush(&s->dev);
	/*
	 * 3. Read back""", """	if (r == 0)
		r = dev_flush(&s->dev);
	if (r < 0)
		return r;
	r = write_sb_copies(s);
	if (r == 0)
		r = dev_flush(&s->dev);
	if (r < 0)
		return r;
	s->have_sb = 1;
	s->sb_copies = 7;
	/*
	 * 3. Read back""")],
    },
    {
        "name": "record-one-slot",
        "breaks": "state_commit: every record goes to slot 0 instead of the"
                  " slot not holding the newest one; a torn record write then"
                  " destroys the only valid record",
        "kill": ["t20-limit", "t17-crash"],
        "file": "state.c",
        "patch": [("""rec->seq % 2 ? STATE_REC_SLOT1 : STATE_REC_SLOT0""", """STATE_REC_SLOT0""")],
    },
    {
        "name": "used-skip-overwrite",
        "breaks": "read_used: a step writes only the ciphertext of its own used"
                  " blocks, not over destinations that held the plaintext of"
                  " used blocks H higher; that plaintext stays on the device"
                  " (the traced run's scan for live plaintext fails)",
        "kill": ["t20-used"],
        "file": "engine.c",
        "patch": [("""		s->nwr = usedmap_runs(e->map, a, f, g->header_size - g->src_offset, s->wr, cap);""",
                   """		s->nwr = usedmap_runs(e->map, a, f, 0, s->wr, cap);""")],
    },
]
