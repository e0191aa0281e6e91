// Package eval scores a vision-language model on VQAv2, GQA, POPE and TextVQA
// the way the benchmarks' reference code does, and runs evaluations that
// survive interruption.
//
// It never sees the model: Run asks an Answerer (implemented by the command
// line tool) for one answer per question and appends each answer to a JSON
// lines file as soon as it has it, so a crashed or cancelled run resumes where
// it stopped. Score turns answers into the numbers the papers report:
//
//   - VQAv2: accuracy as GT-Vision-Lab/VQA
//     PythonEvaluationTools/vqaEvaluation/vqaEval.py (master) computes it,
//     including its answer normalisation and its leave-one-out form of
//     min(#humans/3, 1), overall and per answer type and question type, on
//     answers first cleaned by the EvalAI processor as LLaVA's
//     scripts/convert_vqav2_for_submission.py cleans them for the server
//     (WriteVQAv2Submission writes that upload file for test-dev).
//   - TextVQA: the same leave-one-out accuracy with the EvalAI answer
//     processor, as haotian-liu/LLaVA llava/eval/m4c_evaluator.py
//     (TextVQAAccuracyEvaluator) computes it.
//   - GQA: exact match of the prediction, cleaned as LLaVA's
//     scripts/convert_gqa_for_eval.py cleans it, against the gold answer, as
//     the official GQA eval.py compares them.
//   - POPE: LLaVA's llava/eval/eval_pope.py yes/no parsing, then accuracy,
//     precision, recall, F1 and yes-ratio per category ("yes" is positive),
//     and the mean F1 over categories that the LLaVA-1.5 paper reports.
//
// LoadItems reads each benchmark's standard question and annotation files and
// LLaVA's JSON-lines question files. Prompts carry LLaVA-1.5's short-answer
// suffix (see Task.Prompt); the conversation template is the model's business.
//
// Allowed imports: the standard library only. eval must not import any model
// package.
package eval
