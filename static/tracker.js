/* SessionMood tracker: placeholder until the tracker issue lands. */
