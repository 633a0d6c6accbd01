PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE iro_meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO iro_meta VALUES('app','iro-bb');
INSERT INTO iro_meta VALUES('schema_version','1');
CREATE TABLE iro_migrations (
	version INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO iro_migrations VALUES(1,'initial schema','2026-12-01 21:42:00.791878');
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	config JSON NOT NULL, 
	provider_info JSON NOT NULL, 
	metrics JSON NOT NULL, 
	out_dir TEXT, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO runs VALUES(1,'v1run','done','{"data": "/tmp/v1store/train.jsonl", "eval": "/tmp/v1store/eval.jsonl", "eval_split": 0.25, "limit": null, "model": "/tmp/v1store/tiny-lm", "provider": "hf", "base_url": null, "tokenizer": null, "api_mode": "auto", "concurrency": 8, "device": null, "grader": "sentiment", "iterations": 2, "w": 2, "k": 2, "l": 4, "max_tokens": 8, "beta": 1.0, "temperature": 1.0, "top_p": 1.0, "selection": "diverse", "rollouts": null, "guided_rollouts": 4, "reweight": "best", "tau": 0.1, "value_data": "all", "fresh_prompts": false, "value_backbone": "minilm-l6", "value_tuning": "full", "value_epochs": 1, "value_lr": 5e-05, "warm_start": true, "seed": 1, "run_name": "v1run", "out": "/tmp/v1store/run", "batch_api": false, "no_cache": false}','{"provider": "hf", "model": "tiny-lm", "device": "cpu", "dtype": "float32", "parameters": 3219776, "max_context": 1024, "max_batch_rows": 64, "kv_budget_mb": 512.0, "capabilities": {"n": true, "seed": true, "logprobs": true, "score": true, "stop": true, "kv_handles": true, "token_exact_continuation": true}}','{"base_mean_reward": -0.07375000000000001, "bon_mean_reward": 0.0, "bon_n": 4, "iterations": 2, "iro_mean_reward": 0.0, "iro_grader_reward": 0.0, "win_rate_vs_base": 0.5, "cbs_single_value_reward": -0.49905}','/tmp/v1store/run',NULL,'2026-12-01 21:42:00.829776','2026-12-01 21:42:10.094570');
CREATE TABLE request_cache (
	"key" VARCHAR(64) NOT NULL, 
	provider VARCHAR(64) NOT NULL, 
	request JSON NOT NULL, 
	response JSON NOT NULL, 
	hits INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE grade_cache (
	"key" VARCHAR(64) NOT NULL, 
	grader_hash VARCHAR(64) NOT NULL, 
	score FLOAT, 
	error TEXT, 
	details JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO grade_cache VALUES('06fe4cc338a68abc6ca1bc383e6fb3fb47cb2efc6a88b62d8f09b566404783d9','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.270644');
INSERT INTO grade_cache VALUES('4a254647f0cd93405b408f3cb9ce8e415eeb36a6aea77550c3d54f3e1523e419','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.272215');
INSERT INTO grade_cache VALUES('9b487821b1fa7501ab4fc16a9ea7ab422668b97e2bd6348846600f16275293ef','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.25,NULL,'{}','2026-12-01 21:42:01.273095');
INSERT INTO grade_cache VALUES('978f91d45ce04b6e1251879abfeb5591ab7391e68d577c996dc48e5d7ac64225','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.273892');
INSERT INTO grade_cache VALUES('43617b7ba37dc41e0a18d68fe6a672ac49b2ad926444ab87d286d2e22cdcb573','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.274581');
INSERT INTO grade_cache VALUES('8328896436ea4ec95cc722ba79ae0d210c6b361fb09e817de79c360050684095','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.275282');
INSERT INTO grade_cache VALUES('1cb17d5046db410edff56327dbcb40330387845ee8efa55024d346df1733fccb','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.276003');
INSERT INTO grade_cache VALUES('7abf86ea8017fae9639c13b78f1def50b159b38b2fdbe9753ee6d0b202f3075c','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.34000000000000002442,NULL,'{}','2026-12-01 21:42:01.276672');
INSERT INTO grade_cache VALUES('3a5637dbdf3fe9c3f30c8294238b13a869ec0d7c73743174d577a47be19b1937','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.360635');
INSERT INTO grade_cache VALUES('7241e3a868d572d0a9aff965e6df20021ce12eae14a3130e2a45cf07dc218d0e','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.361684');
INSERT INTO grade_cache VALUES('4371952199f8d0e71c0630f15591b210a28e1ef038492611e2ba78c7585f4629','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.362427');
INSERT INTO grade_cache VALUES('c1a039f9f985edf01186c2b805d3a32020d207e2bc799c921071db55b26ebcd6','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.363016');
INSERT INTO grade_cache VALUES('beb176106ecfd09265aa630f917382a61fbd6fd07ee0f307d38f38a6145ce131','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.363554');
INSERT INTO grade_cache VALUES('197879871d343929b096e97aae1dd59cd3a2e7f1836a8be73af7d194dc56869a','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.364122');
INSERT INTO grade_cache VALUES('4de37f0130fe849505d31ffbd07211d5e145f2ea8700eaf83e14299243868b24','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.44040000000000001367,NULL,'{}','2026-12-01 21:42:01.364723');
INSERT INTO grade_cache VALUES('15be0548d258faaa8f0c459dced22da194578a41effb5c3f0ccde0d9b74ebef2','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.25,NULL,'{}','2026-12-01 21:42:01.365305');
INSERT INTO grade_cache VALUES('c6cc722771476e5a3ff0b8863ce74fb9cfc5fcaa1614d33e610b96d2afdbe409','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.366000');
INSERT INTO grade_cache VALUES('72a5480a2167392b753ae775710b8dd8593778f583ca74c1b8010c4da5bf8c11','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.366565');
INSERT INTO grade_cache VALUES('2a40f5c93ff84f688a421790bdc68fdf9533bd61de96a97c4aeff80a0e9a9fd2','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.367146');
INSERT INTO grade_cache VALUES('729754cb5139122ed374b1ae719434dc55dabed5af1d89b84cf59aa989c7ad5a','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:01.367709');
INSERT INTO grade_cache VALUES('9c31a095b7abb4181f698807f88c4f3f0c188e5bc88e91031026270c44927a96','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.63690000000000002167,NULL,'{}','2026-12-01 21:42:05.985256');
INSERT INTO grade_cache VALUES('fb739e8b35dd76c1658867b461d6a8c2de9af69cf79995ecfe0902127e8c011e','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:05.985975');
INSERT INTO grade_cache VALUES('5d731aee18adbc9905a7105ed18490189558112cabab3c60d5b6391edc85c3d7','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.2731999999999999984,NULL,'{}','2026-12-01 21:42:05.986591');
INSERT INTO grade_cache VALUES('733f41bb49a9761ed551732a628d0a032399fff00c1f44f2bd14bce113bb4a92','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:05.987078');
INSERT INTO grade_cache VALUES('39c5e0808a1f99de04b98d87b13d7ac40bf2439cd7f6cefaea10acab4ad2a46f','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.36120000000000002104,NULL,'{}','2026-12-01 21:42:05.987470');
INSERT INTO grade_cache VALUES('47fb83e97c15d365bc20207a4ec3a0964ab24ad9789f69ffae442159ee89fc86','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:05.987821');
INSERT INTO grade_cache VALUES('94e7283c165c69565d958f73dad10a91247abfef9953a66f64f7ccb153f9fd02','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.36120000000000002104,NULL,'{}','2026-12-01 21:42:05.988159');
INSERT INTO grade_cache VALUES('35e24a0ec50c18d7a0639b51c837d243f794038b60548d39cab08c5663c2f3b0','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:05.988499');
INSERT INTO grade_cache VALUES('6573ddc43493479fec6b61ef678b32a40e844fa224eb5a29a685674eec6c583c','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.42149999999999998578,NULL,'{}','2026-12-01 21:42:06.210025');
INSERT INTO grade_cache VALUES('3b58ccc456a979235a074950cec9f7181b1fddac6032b0541c0af234df866ad8','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.210921');
INSERT INTO grade_cache VALUES('6afec6ecb08587e779bb4769f6909b31d7d2ebbf4df2583a590b321e51f4a595','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.211699');
INSERT INTO grade_cache VALUES('696e6d1d4a6fdc4fb2cf8ba640bf495dad191c89dec5928b6ff0d683f25048a3','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.20230000000000000759,NULL,'{}','2026-12-01 21:42:06.212385');
INSERT INTO grade_cache VALUES('7823c1fd7b94205b2b7b056a096dee795769a4569fd8d6d6690d66fdf46bc0eb','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.212920');
INSERT INTO grade_cache VALUES('9f91640bcd6b84bc6e7dfe040d4234d834907c56d87cd82b7d57a72cc833260d','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',-0.077200000000000004729,NULL,'{}','2026-12-01 21:42:06.213308');
INSERT INTO grade_cache VALUES('cc474bd7cfd09be635e33c24240ed888075ba3b2b126b08a4025dcd3f649be08','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.213734');
INSERT INTO grade_cache VALUES('285d7d7bb087cadcf3015ccc915c6856a2a6f9bc9de8cd3a072d93d53b7b5c64','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.214083');
INSERT INTO grade_cache VALUES('20026e69a727e5d435b2814db8a35f0df930fda4a9ccb7dd60a7de807158e6d8','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.214525');
INSERT INTO grade_cache VALUES('13c6ee5b10d0c4600fad246c0444bf64d777418a1e17266b55bc8a615a1251a8','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.215076');
INSERT INTO grade_cache VALUES('6d5692acdccd2bd28a73a2bb8944163816a04a917e3e14bb560c15b45ee74c35','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.215616');
INSERT INTO grade_cache VALUES('0b83c1fad0311103c0afad4daaedc0501f57adb0964db24a7262194896ab1b05','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.216218');
INSERT INTO grade_cache VALUES('f3a498dfdfda4891691ac07c3abc86e19a11bf23e5a43cfae4a2b6bd959c6191','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.438509');
INSERT INTO grade_cache VALUES('98e22c95e39d2c41479db6eab9e7feb79850ac9eb29e41459cf6147eac415fb0','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.42149999999999998578,NULL,'{}','2026-12-01 21:42:06.439217');
INSERT INTO grade_cache VALUES('44a1a252445c58872ac7e898e09f2b678851e77a4cf0cc78295959713b200b87','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.42149999999999998578,NULL,'{}','2026-12-01 21:42:06.439702');
INSERT INTO grade_cache VALUES('732ed811a716a720da59e7d755d51646ef525e14a2ea627b9f63238e1d8b6ef3','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.440105');
INSERT INTO grade_cache VALUES('aeb1d77c0bf512b23702f35712a030c7c105f5b70ff8b2c58e8ba8cc8d81d7d4','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.440498');
INSERT INTO grade_cache VALUES('0fd2dcd0ae3b2dbf5619cc9a92afdff6e6f0da064a652745b03fbe878b0a18e3','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.440995');
INSERT INTO grade_cache VALUES('5c1000754b6c0dca4ca09ebddd060a5c29722b95df6090768db92293ec059dee','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.441634');
INSERT INTO grade_cache VALUES('5185fccece30b4a15c37fdda6cb54948776a0886c320128fda2c84cef570965f','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.442232');
INSERT INTO grade_cache VALUES('317a320e36cec2eb1f0ecc79346690418acaf2a7ceea7761abbcbebd3a35fb71','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.442760');
INSERT INTO grade_cache VALUES('58e82a0385690249b47ad302db648a9df060fecb64f33dced3951b471f947754','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.31819999999999998285,NULL,'{}','2026-12-01 21:42:06.443270');
INSERT INTO grade_cache VALUES('7cc38b179e8a5580be84285ba883cd12fea0cb86bcfc943a99b6b2faf5b0dcb2','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:06.443738');
INSERT INTO grade_cache VALUES('80cd06a5b05acaa84c2629618f019f781ffdf36131169110b87ec226b1545c02','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.31819999999999998285,NULL,'{}','2026-12-01 21:42:06.444182');
INSERT INTO grade_cache VALUES('0ffa5dfdfa318dada4ed5e424d68fa616748a09a66530dbf6e3937419664629f','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.075864');
INSERT INTO grade_cache VALUES('e52963516cf890875ef845556aed5c6d28036415b2a24419dc07473309178057','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.076795');
INSERT INTO grade_cache VALUES('4818194e9aa0e86e364a252717ba8466e64eb2c13290384fde069a07891faae2','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.077752');
INSERT INTO grade_cache VALUES('ce98c877f102a7222d5dc49cf43a25be66b93c4679256f1a08f5692ab0c5b0f0','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.078734');
INSERT INTO grade_cache VALUES('d9b899d611666b6681b05d313e0aba2eae9ed46dd0f92cde55fd74b9a7e15839','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.079364');
INSERT INTO grade_cache VALUES('fc95e7c72df666fe00acada1bd45796b39a846c8d6716c96b3ac862a5d8b50bb','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.080090');
INSERT INTO grade_cache VALUES('e6ff55bf2cf70c3a29c40b8e027ade0239b29d2113ef12f27c24b942e5213ba3','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.080717');
INSERT INTO grade_cache VALUES('ae9986bef00ac30a44fb97e268dc43e57d6598a396b58515440c04c4cfaf5966','0d5402f5149164d4dcbe1b97ddbdc597e6e5488494f1068b11d6c0fd54665295',0.0,NULL,'{}','2026-12-01 21:42:10.081641');
CREATE TABLE jobs (
	id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	args JSON NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	progress JSON NOT NULL, 
	error TEXT, 
	worker VARCHAR(200), 
	attempts INTEGER NOT NULL, 
	cancel_requested BOOLEAN NOT NULL, 
	heartbeat_at DATETIME, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO jobs VALUES(1,'generate','{"run": "v1run", "input": "/tmp/v1store/prompts.jsonl", "output": "/tmp/v1store/out2.jsonl"}','queued','{}',NULL,NULL,0,0,NULL,'2026-12-01 21:42:12.038932',NULL,NULL);
CREATE TABLE examples (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	ex_id VARCHAR(200) NOT NULL, 
	split VARCHAR(16) NOT NULL, 
	data JSON NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, ex_id), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO examples VALUES(1,1,'t0','train','{"id": "t0", "prompt": "Say one thing about rain."}');
INSERT INTO examples VALUES(2,1,'t1','train','{"id": "t1", "prompt": "Say one thing about tea."}');
INSERT INTO examples VALUES(3,1,'t2','train','{"id": "t2", "prompt": "Say one thing about a queue."}');
INSERT INTO examples VALUES(4,1,'e0','eval','{"id": "e0", "messages": [{"role": "user", "content": "Say one thing about snow."}]}');
INSERT INTO examples VALUES(5,1,'e1','eval','{"id": "e1", "messages": [{"role": "user", "content": "Say one thing about fog."}]}');
INSERT INTO examples VALUES(6,1,'gen:a5a84d8e:line-1','generate','{"prompt": "Hello there."}');
INSERT INTO examples VALUES(7,1,'gen:a5a84d8e:x2','generate','{"id": "x2", "prompt": "Tell me about cats."}');
CREATE TABLE iterations (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	t INTEGER NOT NULL, 
	stage VARCHAR(32) NOT NULL, 
	metrics JSON NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, t), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO iterations VALUES(1,1,0,'done','{"eval_mean_reward": -0.07375000000000001, "eval_reward_stderr": 0.011250000000000003, "base_first_reward": 0.0, "bon_mean_reward": 0.0, "eval_grader_reward": 0.0, "eval_answers_per_prompt": 4, "bon_n": 4, "bon_tokens_per_prompt": 32.0, "base_tokens_per_prompt": 8.0, "bon_curve": [{"n": 1, "reward": 0.0, "tokens_per_prompt": 8.0}, {"n": 2, "reward": 0.0, "tokens_per_prompt": 16.0}, {"n": 4, "reward": 0.0, "tokens_per_prompt": 32.0}], "grade_errors": 0, "tokens": 64, "requests": 1, "cache_hits": 0, "cost_usd": 0.0}','2026-12-01 21:42:01.114919','2026-12-01 21:42:01.284974');
INSERT INTO iterations VALUES(2,1,1,'done','{"train_mean_reward": 0.05753333333333333, "train_best_reward": 0.1468, "train_rollouts": 12, "train_prompts": 3, "grade_errors": 0, "value": {"n_examples": 58, "n_train": 54, "n_val": 4, "split_by": "rollout", "epochs_run": 1, "best_epoch": 1, "stopped_early": false, "train_loss": 0.9469414088461134, "best_train_loss": 0.9469414088461134, "val_loss": 1.776727318763733, "val_mse": 0.028953026418822043, "val_mse_constant": 0.04377393827160494, "val_mse_ratio": 0.6614215572557507, "val_pearson": null, "samples_per_s": 16.121648879948815, "train_seconds": 3.349533314000041, "trainable_params": 22713601, "total_params": 22713601, "lr": 5e-05, "tuning": "full", "loss": "mse", "norm_mean": 0.040777777777777774, "norm_std": 0.12765463631548796, "constant_prediction": 0.040777777777777774, "device": "cpu", "warm_start": null, "history": [{"epoch": 1, "train_loss": 0.9469414088461134, "val_loss": 1.776727318763733, "val_mse": 0.028953026418822043, "val_mse_constant": 0.04377393827160494, "val_mse_ratio": 0.6614215572557507, "val_pearson": null}], "record_id": 1}, "eval_mean_reward": -0.49905, "eval_reward_stderr": 0.13785, "eval_gain": -0.4253, "eval_gain_stderr": 0.1491, "eval_grader_reward": 0.0, "eval_answers_per_prompt": 4.0, "win_rate_vs_base": 0.0, "eval_tokens_per_prompt": 32.0, "eval_prompts": 2, "tokens": 160, "requests": 3, "cache_hits": 0, "cost_usd": 0.0}','2026-12-01 21:42:01.286851','2026-12-01 21:42:05.992351');
INSERT INTO iterations VALUES(3,1,2,'done','{"train_mean_reward": 0.06755833333333332, "train_best_reward": 0.24656666666666668, "train_rollouts": 24, "train_prompts": 3, "grade_errors": 0, "value": {"n_examples": 110, "n_train": 102, "n_val": 8, "split_by": "rollout", "epochs_run": 1, "best_epoch": 1, "stopped_early": false, "train_loss": 1.005774104858146, "best_train_loss": 1.005774104858146, "val_loss": 1.4029618501663208, "val_mse": 0.03827549422656115, "val_mse_constant": 0.03464626421376393, "val_mse_ratio": 1.1047509766249324, "val_pearson": 0.5542178620382076, "samples_per_s": 37.405255554362, "train_seconds": 2.726889536999977, "trainable_params": 22713601, "total_params": 22713601, "lr": 5e-05, "tuning": "full", "loss": "mse", "norm_mean": 0.06249019607843136, "norm_std": 0.1651723909356905, "constant_prediction": 0.06249019607843136, "device": "cpu", "warm_start": "/tmp/v1store/run/value/v1", "history": [{"epoch": 1, "train_loss": 1.005774104858146, "val_loss": 1.4029618501663208, "val_mse": 0.03827549422656115, "val_mse_constant": 0.03464626421376393, "val_mse_ratio": 1.1047509766249324, "val_pearson": 0.5542178620382076}], "record_id": 2}, "eval_mean_reward": 0.0, "eval_reward_stderr": 0.0, "eval_gain": 0.49905, "eval_gain_stderr": 0.13785, "eval_grader_reward": 0.0, "eval_answers_per_prompt": 4.0, "win_rate_vs_base": 0.5, "eval_tokens_per_prompt": 32.0, "eval_prompts": 2, "tokens": 256, "requests": 6, "cache_hits": 0, "cost_usd": 0.0}','2026-12-01 21:42:05.993241','2026-12-01 21:42:10.088752');
CREATE TABLE value_models (
	id INTEGER NOT NULL, 
	run_id INTEGER, 
	t INTEGER, 
	path TEXT NOT NULL, 
	backbone TEXT NOT NULL, 
	metrics JSON NOT NULL, 
	config JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE SET NULL
);
INSERT INTO value_models VALUES(1,1,1,'/tmp/v1store/run/value/v1','minilm-l6','{"n_examples": 58, "n_train": 54, "n_val": 4, "split_by": "rollout", "epochs_run": 1, "best_epoch": 1, "stopped_early": false, "train_loss": 0.9469414088461134, "best_train_loss": 0.9469414088461134, "val_loss": 1.776727318763733, "val_mse": 0.028953026418822043, "val_mse_constant": 0.04377393827160494, "val_mse_ratio": 0.6614215572557507, "val_pearson": null, "samples_per_s": 16.121648879948815, "train_seconds": 3.349533314000041, "trainable_params": 22713601, "total_params": 22713601, "lr": 5e-05, "tuning": "full", "loss": "mse", "norm_mean": 0.040777777777777774, "norm_std": 0.12765463631548796, "constant_prediction": 0.040777777777777774, "device": "cpu", "warm_start": null, "history": [{"epoch": 1, "train_loss": 0.9469414088461134, "val_loss": 1.776727318763733, "val_mse": 0.028953026418822043, "val_mse_constant": 0.04377393827160494, "val_mse_ratio": 0.6614215572557507, "val_pearson": null}]}','{"model": {"backbone": "minilm-l6", "pooling": "auto", "max_length": 512, "join": "\n", "device": "auto"}, "tuning": "full", "top_layers": 2, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_modules": null, "lr": 5e-05, "weight_decay": 0.01, "epochs": 1, "batch_size": 32, "eval_batch_size": 64, "grad_clip": 1.0, "warmup_ratio": 0.0, "loss": "mse", "prefix_mode": "chunk", "chunk_tokens": 4, "k_random": 4, "val_fraction": 0.1, "split_by": "auto", "patience": 2, "min_delta": 0.0, "seed": 2}','2026-12-01 21:42:05.794924');
INSERT INTO value_models VALUES(2,1,2,'/tmp/v1store/run/value/v2','minilm-l6','{"n_examples": 110, "n_train": 102, "n_val": 8, "split_by": "rollout", "epochs_run": 1, "best_epoch": 1, "stopped_early": false, "train_loss": 1.005774104858146, "best_train_loss": 1.005774104858146, "val_loss": 1.4029618501663208, "val_mse": 0.03827549422656115, "val_mse_constant": 0.03464626421376393, "val_mse_ratio": 1.1047509766249324, "val_pearson": 0.5542178620382076, "samples_per_s": 37.405255554362, "train_seconds": 2.726889536999977, "trainable_params": 22713601, "total_params": 22713601, "lr": 5e-05, "tuning": "full", "loss": "mse", "norm_mean": 0.06249019607843136, "norm_std": 0.1651723909356905, "constant_prediction": 0.06249019607843136, "device": "cpu", "warm_start": "/tmp/v1store/run/value/v1", "history": [{"epoch": 1, "train_loss": 1.005774104858146, "val_loss": 1.4029618501663208, "val_mse": 0.03827549422656115, "val_mse_constant": 0.03464626421376393, "val_mse_ratio": 1.1047509766249324, "val_pearson": 0.5542178620382076}]}','{"model": {"backbone": "minilm-l6", "pooling": "auto", "max_length": 512, "join": "\n", "device": "auto"}, "tuning": "full", "top_layers": 2, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_modules": null, "lr": 5e-05, "weight_decay": 0.01, "epochs": 1, "batch_size": 32, "eval_batch_size": 64, "grad_clip": 1.0, "warmup_ratio": 0.0, "loss": "mse", "prefix_mode": "chunk", "chunk_tokens": 4, "k_random": 4, "val_fraction": 0.1, "split_by": "auto", "patience": 2, "min_delta": 0.0, "seed": 3}','2026-12-01 21:42:09.779073');
CREATE TABLE job_logs (
	id INTEGER NOT NULL, 
	job_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	level VARCHAR(16) NOT NULL, 
	message TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE
);
INSERT INTO job_logs VALUES(1,1,'2026-12-01 21:42:12.040664','info','submitted generate job');
CREATE TABLE rollouts (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	t INTEGER NOT NULL, 
	phase VARCHAR(16) NOT NULL, 
	method VARCHAR(32) NOT NULL, 
	example_id INTEGER NOT NULL, 
	idx INTEGER NOT NULL, 
	prompt TEXT NOT NULL, 
	response TEXT NOT NULL, 
	reward FLOAT, 
	grade_error TEXT, 
	score FLOAT, 
	selected BOOLEAN NOT NULL, 
	weight FLOAT, 
	finish_reason VARCHAR(16), 
	prompt_tokens INTEGER NOT NULL, 
	completion_tokens INTEGER NOT NULL, 
	usage JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, t, phase, method, example_id, idx), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE, 
	FOREIGN KEY(example_id) REFERENCES examples (id) ON DELETE CASCADE
);
INSERT INTO rollouts VALUES(1,1,0,'eval','sample',4,0,'Say one thing about snow.',' asynchronousTR Throughoutochem Vote crackers? spacecraft',0.0,NULL,NULL,1,NULL,'length',0,8,'{"prompt_tokens": 144, "completion_tokens": 32, "provider_calls": 1, "requests": 1, "chunks": 4, "cached_chunks": 0, "scored": 0, "graded": 4, "steps": 1, "generate_seconds": 0.10853315299999622, "score_seconds": 0.0, "grade_seconds": 0.026348111999993762}','2026-12-01 21:42:01.279131');
INSERT INTO rollouts VALUES(2,1,0,'eval','sample',4,1,'Say one thing about snow.',' agility pickpositeiniumLike CONT garage Marc',0.0,NULL,NULL,0,NULL,'length',0,8,'{}','2026-12-01 21:42:01.279139');
INSERT INTO rollouts VALUES(3,1,0,'eval','sample',4,2,'Say one thing about snow.',' dollar disabled offense Theological ambit Numerical ethnicities soci',-0.25,NULL,NULL,0,NULL,'length',0,8,'{}','2026-12-01 21:42:01.279142');
INSERT INTO rollouts VALUES(4,1,0,'eval','sample',4,3,'Say one thing about snow.',' spoonaffirm Hou Hugo appropriated producing Hin valleys',0.0,NULL,NULL,0,NULL,'length',0,8,'{}','2026-12-01 21:42:01.279144');
INSERT INTO rollouts VALUES(5,1,0,'eval','sample',5,0,'Say one thing about fog.',' networkingsaving dining� Beamvest Linesistence',0.0,NULL,NULL,1,NULL,'length',0,8,'{"prompt_tokens": 144, "completion_tokens": 32, "provider_calls": 1, "requests": 1, "chunks": 4, "cached_chunks": 0, "scored": 0, "graded": 4, "steps": 1, "generate_seconds": 0.10862278700000161, "score_seconds": 0.0, "grade_seconds": 0.029370805999974436}','2026-12-01 21:42:01.280595');
INSERT INTO rollouts VALUES(6,1,0,'eval','sample',5,1,'Say one thing about fog.',' quil Brenibr optionsartaemensive Fellowship',0.0,NULL,NULL,0,NULL,'length',0,8,'{}','2026-12-01 21:42:01.280601');
INSERT INTO rollouts VALUES(7,1,0,'eval','sample',5,2,'Say one thing about fog.','na PCI Word Gonzessa ultrason Univ Libraries',0.0,NULL,NULL,0,NULL,'length',0,8,'{}','2026-12-01 21:42:01.280603');
INSERT INTO rollouts VALUES(8,1,0,'eval','sample',5,3,'Say one thing about fog.','ould wearfamilies Difficulty responders portions quinoa authentically',-0.34000000000000002442,NULL,NULL,0,NULL,'length',0,8,'{}','2026-12-01 21:42:01.280605');
INSERT INTO rollouts VALUES(9,1,1,'train','sample',1,0,'Say one thing about rain.','Lay granulesellaneous Nelson usable dominant playgrounddead',0.0,NULL,NULL,1,1.0,'length',0,8,'{"prompt_tokens": 24, "completion_tokens": 32, "provider_calls": 1, "requests": 1, "chunks": 4, "cached_chunks": 0, "scored": 0, "graded": 4, "steps": 1, "generate_seconds": 0.06654710899999827, "score_seconds": 0.0, "grade_seconds": 0.010613640000030955}','2026-12-01 21:42:01.368632');
INSERT INTO rollouts VALUES(10,1,1,'train','sample',1,1,'Say one thing about rain.',' corrosiveeline makes scratchedPROJECT trillbi Ubuntu',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.368639');
INSERT INTO rollouts VALUES(11,1,1,'train','sample',1,2,'Say one thing about rain.','paralleledariousownsChinesezen edges morb parameter',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.368641');
INSERT INTO rollouts VALUES(12,1,1,'train','sample',1,3,'Say one thing about rain.',' teacpoor sale flav entering sports restoringopsies',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.368644');
INSERT INTO rollouts VALUES(13,1,1,'train','sample',2,0,'Say one thing about tea.','moves ionizationled totally fillings boxingtta proportions',0.0,NULL,NULL,0,0.0,'length',0,8,'{"prompt_tokens": 24, "completion_tokens": 32, "provider_calls": 1, "requests": 1, "chunks": 4, "cached_chunks": 0, "scored": 0, "graded": 4, "steps": 1, "generate_seconds": 0.06670045900000332, "score_seconds": 0.0, "grade_seconds": 0.011705779000010352}','2026-12-01 21:42:01.369845');
INSERT INTO rollouts VALUES(14,1,1,'train','sample',2,1,'Say one thing about tea.',' retrofit oscillator arrangedOperations erythesession atrophy port',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.369853');
INSERT INTO rollouts VALUES(15,1,1,'train','sample',2,2,'Say one thing about tea.','umer negroartist[\ >> solvent effectively exporting',0.44040000000000001367,NULL,NULL,1,1.0,'length',0,8,'{}','2026-12-01 21:42:01.369856');
INSERT INTO rollouts VALUES(16,1,1,'train','sample',2,3,'Say one thing about tea.',' cylindspl sweetenersnai Carbon harmless setting variants',0.25,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.369858');
INSERT INTO rollouts VALUES(17,1,1,'train','sample',3,0,'Say one thing about a queue.','pertureClosesponsored SaltUIarly ponder marks',0.0,NULL,NULL,1,1.0,'length',0,8,'{"prompt_tokens": 28, "completion_tokens": 32, "provider_calls": 1, "requests": 1, "chunks": 4, "cached_chunks": 0, "scored": 0, "graded": 4, "steps": 1, "generate_seconds": 0.06673679400000765, "score_seconds": 0.0, "grade_seconds": 0.012790836000021955}','2026-12-01 21:42:01.370787');
INSERT INTO rollouts VALUES(18,1,1,'train','sample',3,1,'Say one thing about a queue.','Comment-).__letcherNanandem('', Jehovah',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.370793');
INSERT INTO rollouts VALUES(19,1,1,'train','sample',3,2,'Say one thing about a queue.',' deseg": robustness Dementiaconvers Founded tensorflow Coming',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.370796');
INSERT INTO rollouts VALUES(20,1,1,'train','sample',3,3,'Say one thing about a queue.','END subsurface OECD polyester Mills suckruit investigated',0.0,NULL,NULL,0,0.0,'length',0,8,'{}','2026-12-01 21:42:01.370798');
INSERT INTO rollouts VALUES(21,1,1,'eval','iro',4,0,'Say one thing about snow.','low lilyernacleHOME Monte shame removedassemble',-0.63690000000000002167,NULL,0.069461300969123840332,0,NULL,'length',0,8,'{}','2026-12-01 21:42:05.989061');
INSERT INTO rollouts VALUES(22,1,1,'eval','iro',4,1,'Say one thing about snow.','Tool CERN dietitianoriously?* faultч oldest',0.0,NULL,0.066465668380260467529,1,NULL,'length',0,8,'{"prompt_tokens": 304, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.041661451000038596, "score_seconds": 0.12128062900001169, "grade_seconds": 0.005333479999990232}','2026-12-01 21:42:05.989064');
INSERT INTO rollouts VALUES(23,1,1,'eval','iro',4,2,'Say one thing about snow.','low lilyernacleHOME Har world lunchtimeforgettable',-0.2731999999999999984,NULL,0.066334031522274017333,0,NULL,'length',0,8,'{}','2026-12-01 21:42:05.989066');
INSERT INTO rollouts VALUES(24,1,1,'eval','iro',4,3,'Say one thing about snow.','Tool CERN dietitianoriouslyObviously bathroomliers RFC',0.0,NULL,0.050903819501399993896,0,NULL,'length',0,8,'{}','2026-12-01 21:42:05.989067');
INSERT INTO rollouts VALUES(25,1,1,'eval','iro',5,0,'Say one thing about fog.',' detention TDapiro Some absorbs� XX?’',-0.36120000000000002104,NULL,0.048595603555440902709,0,NULL,'length',0,8,'{}','2026-12-01 21:42:05.989814');
INSERT INTO rollouts VALUES(26,1,1,'eval','iro',5,1,'Say one thing about fog.','packet molecular concom Saviorinter stoppedhdcutaneous',0.0,NULL,0.04804019629955291748,1,NULL,'length',0,8,'{"prompt_tokens": 304, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.041692087000001266, "score_seconds": 0.12158827100000735, "grade_seconds": 0.00608543800001371}','2026-12-01 21:42:05.989818');
INSERT INTO rollouts VALUES(27,1,1,'eval','iro',5,2,'Say one thing about fog.',' detention TDapiro Some Perform Imicionsens',-0.36120000000000002104,NULL,0.044891882687807083129,0,NULL,'length',0,8,'{}','2026-12-01 21:42:05.989820');
INSERT INTO rollouts VALUES(28,1,1,'eval','iro',5,3,'Say one thing about fog.','packet molecular concom Saviorimar ANYocene deliveries',0.0,NULL,0.037231970578432083129,0,NULL,'length',0,8,'{}','2026-12-01 21:42:05.989821');
INSERT INTO rollouts VALUES(29,1,2,'train','cbs',1,0,'Say one thing about rain.',' Sheets optimizerunsqueeze guess Nairobi {: projection Alexandria',0.42149999999999998578,NULL,0.044784784317016601562,1,1.0,'length',0,8,'{"prompt_tokens": 64, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.05769085500003257, "score_seconds": 0.15057430899997826, "grade_seconds": 0.013371677000009186}','2026-12-01 21:42:06.217056');
INSERT INTO rollouts VALUES(30,1,2,'train','cbs',1,1,'Say one thing about rain.','onomy Belf III Thatcher preciseabove protagonrele',0.0,NULL,0.040275789797306060791,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.217062');
INSERT INTO rollouts VALUES(31,1,2,'train','cbs',1,2,'Say one thing about rain.',' Sheets optimizerunsqueeze guess populations–– Manufacturers �',0.0,NULL,0.033379651606082916259,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.217064');
INSERT INTO rollouts VALUES(32,1,2,'train','cbs',1,3,'Say one thing about rain.','onomy Belf III Thatcherïve rapid isolate firearms',-0.20230000000000000759,NULL,0.025680299848318099975,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.217067');
INSERT INTO rollouts VALUES(33,1,2,'train','cbs',2,0,'Say one thing about tea.',' shall Beckructures began enable sqlite Oper flo',0.0,NULL,0.075036503374576568603,1,1.0,'length',0,8,'{"prompt_tokens": 64, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.05775869799998645, "score_seconds": 0.15081701299999395, "grade_seconds": 0.01448471700001619}','2026-12-01 21:42:06.218160');
INSERT INTO rollouts VALUES(34,1,2,'train','cbs',2,1,'Say one thing about tea.','domains Garlic Muhي''ll territ levels sorry',-0.077200000000000004729,NULL,0.067801743745803833007,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.218167');
INSERT INTO rollouts VALUES(35,1,2,'train','cbs',2,2,'Say one thing about tea.','domains Garlic Muhي particularly Jab nickname gest',0.0,NULL,0.067678801715373992919,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.218170');
INSERT INTO rollouts VALUES(36,1,2,'train','cbs',2,3,'Say one thing about tea.',' shall Beckructures beganvValuesconfigure Jere',0.0,NULL,0.065100073814392089843,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.218172');
INSERT INTO rollouts VALUES(37,1,2,'train','cbs',3,0,'Say one thing about a queue.',' populate Meditation Morocco assignment metalHealthRayος',0.0,NULL,0.049288112670183181762,0,0.0,'length',0,8,'{"prompt_tokens": 72, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.05775897800003804, "score_seconds": 0.15086241100004827, "grade_seconds": 0.015401521999990564}','2026-12-01 21:42:06.219134');
INSERT INTO rollouts VALUES(38,1,2,'train','cbs',3,1,'Say one thing about a queue.',' populate Meditation Morocco assignment rangesmanducers cables',0.0,NULL,0.043890971690416336059,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.219141');
INSERT INTO rollouts VALUES(39,1,2,'train','cbs',3,2,'Say one thing about a queue.',' � seb molecular cravingsFeature sentientVirginia folktales',0.0,NULL,0.042816676199436187744,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.219143');
INSERT INTO rollouts VALUES(40,1,2,'train','cbs',3,3,'Say one thing about a queue.',' � seb molecular cravings responding oxidesasmodium Hemisphere',0.0,NULL,0.031346734613180160522,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.219145');
INSERT INTO rollouts VALUES(41,1,2,'train','cbs',1,100000,'Say one thing about rain.',' sale succinct MK unanswered Hig confDespite Hack',0.0,NULL,0.038114894181489944458,0,0.0,'length',0,8,'{"prompt_tokens": 64, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.04464468699995905, "score_seconds": 0.17045356899996023, "grade_seconds": 0.008276044000012917}','2026-12-01 21:42:06.444774');
INSERT INTO rollouts VALUES(42,1,2,'train','cbs',1,100001,'Say one thing about rain.',' attracted editors Blank yeasts monstrous Combine mkduino',0.42149999999999998578,NULL,0.036490123718976974487,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.444778');
INSERT INTO rollouts VALUES(43,1,2,'train','cbs',1,100002,'Say one thing about rain.',' attracted editors Blank yeasts]'')qualified enrichesbl',0.42149999999999998578,NULL,0.03458680957555770874,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.444779');
INSERT INTO rollouts VALUES(44,1,2,'train','cbs',1,100003,'Say one thing about rain.',' sale succinct MK unanswered hugticks currents moratorium',0.0,NULL,0.028791230171918869018,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.444781');
INSERT INTO rollouts VALUES(45,1,2,'train','cbs',2,100000,'Say one thing about tea.',' nmDebadays shafts Riding Busromycin alk',0.0,NULL,0.069253250956535339355,0,0.0,'length',0,8,'{"prompt_tokens": 64, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.044680499999969925, "score_seconds": 0.17071833500000366, "grade_seconds": 0.008988321999993332}','2026-12-01 21:42:06.445603');
INSERT INTO rollouts VALUES(46,1,2,'train','cbs',2,100001,'Say one thing about tea.','ercury ParliamentTypically staffing COR….. Britannixon',0.0,NULL,0.063991948962211608886,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.445610');
INSERT INTO rollouts VALUES(47,1,2,'train','cbs',2,100002,'Say one thing about tea.',' nmDebadays shafts apnea arist resultedWAR',0.0,NULL,0.054146949201822280883,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.445613');
INSERT INTO rollouts VALUES(48,1,2,'train','cbs',2,100003,'Say one thing about tea.','ercury ParliamentTypically staffingaturated unfitGi avenues',0.0,NULL,0.062008980661630630493,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.445615');
INSERT INTO rollouts VALUES(49,1,2,'train','cbs',3,100000,'Say one thing about a queue.',' cfshouldsuCor行 psychologistsicy Unicode',0.0,NULL,0.042425770312547683715,0,0.0,'length',0,8,'{"prompt_tokens": 72, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.0446798190000095, "score_seconds": 0.17078256100006683, "grade_seconds": 0.009815051999964908}','2026-12-01 21:42:06.446504');
INSERT INTO rollouts VALUES(50,1,2,'train','cbs',3,100001,'Say one thing about a queue.',' privile {'' importantly mosaiclanders oweanswered curtain',0.31819999999999998285,NULL,0.041419096291065216064,1,1.0,'length',0,8,'{}','2026-12-01 21:42:06.446511');
INSERT INTO rollouts VALUES(51,1,2,'train','cbs',3,100002,'Say one thing about a queue.',' cfshouldsuCor crows assimilate forearm financial',0.0,NULL,0.039666913449764251708,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.446514');
INSERT INTO rollouts VALUES(52,1,2,'train','cbs',3,100003,'Say one thing about a queue.',' privile {'' importantly mosaic shorter elongated artistslect',0.31819999999999998285,NULL,0.03537705540657043457,0,0.0,'length',0,8,'{}','2026-12-01 21:42:06.446516');
INSERT INTO rollouts VALUES(53,1,2,'eval','iro',4,0,'Say one thing about snow.','…………velationhun US Assignment bountiza facade',0.0,NULL,0.12759418040513992309,1,NULL,'length',0,8,'{"prompt_tokens": 304, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.05070292400000653, "score_seconds": 0.2266564120000112, "grade_seconds": 0.008856604000015977}','2026-12-01 21:42:10.082732');
INSERT INTO rollouts VALUES(54,1,2,'eval','iro',4,1,'Say one thing about snow.','lensahrenheitoskeletalstack° attainingBill pamphlet',0.0,NULL,0.12032464146614074707,0,NULL,'length',0,8,'{}','2026-12-01 21:42:10.082743');
INSERT INTO rollouts VALUES(55,1,2,'eval','iro',4,2,'Say one thing about snow.','lensahrenheitoskeletalstack reputation untold exploitation Gem',0.0,NULL,0.11481942981481552124,0,NULL,'length',0,8,'{}','2026-12-01 21:42:10.082746');
INSERT INTO rollouts VALUES(56,1,2,'eval','iro',4,3,'Say one thing about snow.','…………velationhun USvalence containing incisionssort',0.0,NULL,0.097424689680337905883,0,NULL,'length',0,8,'{}','2026-12-01 21:42:10.082748');
INSERT INTO rollouts VALUES(57,1,2,'eval','iro',5,0,'Say one thing about fog.','colors thumbs tossExploring knightsherkas www',0.0,NULL,0.10159253329038619995,1,NULL,'length',0,8,'{"prompt_tokens": 304, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": 8, "cached_chunks": 0, "scored": 8, "graded": 4, "steps": 2, "generate_seconds": 0.050760931999946024, "score_seconds": 0.22689269599999307, "grade_seconds": 0.01024284400000397}','2026-12-01 21:42:10.084104');
INSERT INTO rollouts VALUES(58,1,2,'eval','iro',5,1,'Say one thing about fog.','hounulent ingrained Dallasounsaturateduan Mannrecord',0.0,NULL,0.097491450607776641845,0,NULL,'length',0,8,'{}','2026-12-01 21:42:10.084111');
INSERT INTO rollouts VALUES(59,1,2,'eval','iro',5,2,'Say one thing about fog.','colors thumbs tossExploring hypoxia implicitlyHold dedication',0.0,NULL,0.08996839076280593872,0,NULL,'length',0,8,'{}','2026-12-01 21:42:10.084113');
INSERT INTO rollouts VALUES(60,1,2,'eval','iro',5,3,'Say one thing about fog.','hounulent ingrained Dallas manipulatinghundred FREEAdded',0.0,NULL,0.092983122915029525756,0,NULL,'length',0,8,'{}','2026-12-01 21:42:10.084115');
INSERT INTO rollouts VALUES(61,1,2,'generate','iro',6,0,'Hello there.',' discoloration posterior involve searchable desegFore''matoes',NULL,NULL,0.11173824593424797058,1,NULL,'length',0,8,'{"prompt_tokens": 40, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": [" discoloration posterior involve searchable", " desegFore''matoes"], "cached_chunks": 0, "scored": 8, "graded": 0, "steps": 2, "generate_seconds": 0.05256498700003931, "score_seconds": 0.20974379200004023, "grade_seconds": 0.0}','2026-12-01 21:42:12.020630');
INSERT INTO rollouts VALUES(62,1,2,'generate','iro',7,0,'Tell me about cats.','mentation_:Had illuminatinglessly mono dissoneroids',NULL,NULL,0.11824227124452590942,1,NULL,'length',0,8,'{"prompt_tokens": 56, "completion_tokens": 32, "provider_calls": 2, "requests": 4, "chunks": ["mentation_:Had illuminating", "lessly mono dissoneroids"], "cached_chunks": 0, "scored": 8, "graded": 0, "steps": 2, "generate_seconds": 0.0526276899999516, "score_seconds": 0.21295134400003235, "grade_seconds": 0.0}','2026-12-01 21:42:12.022317');
CREATE UNIQUE INDEX ix_runs_name ON runs (name);
CREATE INDEX ix_grade_cache_grader_hash ON grade_cache (grader_hash);
CREATE INDEX ix_jobs_status ON jobs (status);
CREATE INDEX ix_examples_run_id ON examples (run_id);
CREATE INDEX ix_iterations_run_id ON iterations (run_id);
CREATE INDEX ix_value_models_run_id ON value_models (run_id);
CREATE INDEX ix_job_logs_job_id ON job_logs (job_id);
CREATE INDEX ix_rollouts_run_id ON rollouts (run_id);
COMMIT;
